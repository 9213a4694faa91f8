"""The two GitHubs the router's scenarios run against, behind one interface.

- `MemoryWorld`: the recording twin `MemoryForge`, faults queued in memory.
- `EmulatorWorld`: the real REST adapter `GitHubForge` against the GitHub emulator
  over loopback HTTP; faults are the emulator's, observations its admin API.

A scenario builds the core with `world.forge`, injects faults by forge operation
(`drop_response`, `fail_before_apply`, `slow_down`, `crash_after_apply`) and observes
GitHub the same way on both sides: comments with their bodies, labels, pull requests,
and the calls that reached GitHub, counted per `Forge` operation (`calls()`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from agent_workflow.core.ports import CheckRun, Comment, Forge, PullRequest, ReviewComment
from agent_workflow.forge.github import GitHubForge
from agent_workflow.testing.forge import READS, MemoryForge
from github_emulator import EmulatorServer
from tests.integration.helpers import (
    COMMENTS_GET,
    COMMENTS_POST,
    LABEL_DELETE,
    LABELS_POST,
    PERMISSION_GET,
    PULLS_GET,
    PULLS_POST,
    TOKEN,
    github_forge,
    setup_world,
)
from tests.support.events import BOT, REPO, TRUSTED, UNTRUSTED

#: The `Forge` operations, and the REST endpoint each one is on the emulator.
ENDPOINTS = {
    "create_comment": COMMENTS_POST,
    "list_comments": COMMENTS_GET,
    "add_labels": LABELS_POST,
    "remove_label": LABEL_DELETE,
    "open_pull_request": PULLS_POST,
    "find_pull_request": PULLS_GET,
    "permission": PERMISSION_GET,
    "review_comments": "GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews/{review_id}/comments",
    "list_review_comments": "GET /repos/{owner}/{repo}/pulls/{pull_number}/comments",
    "reply_to_review_comment": (
        "POST /repos/{owner}/{repo}/pulls/{pull_number}/comments/{comment_id}/replies"
    ),
    "edit_comment": "PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}",
    "check_runs": "GET /repos/{owner}/{repo}/commits/{ref}/check-runs",
    "check_run_annotations": "GET /repos/{owner}/{repo}/check-runs/{check_run_id}/annotations",
}
_OPERATIONS = {endpoint: op for op, endpoint in ENDPOINTS.items()}
#: Fault rules on the emulator match the request path (a regex), per operation.
FAULT_PATHS = {
    "create_comment": ("POST", r"/issues/\d+/comments$"),
    "list_comments": ("GET", r"/issues/\d+/comments$"),
    "add_labels": ("POST", r"/issues/\d+/labels$"),
    "remove_label": ("DELETE", r"/issues/\d+/labels/[^/]+$"),
    "open_pull_request": ("POST", r"/pulls$"),
    "find_pull_request": ("GET", r"/pulls$"),
    "permission": ("GET", r"/collaborators/[^/]+/permission$"),
    "reply_to_review_comment": ("POST", r"/pulls/\d+/comments/\d+/replies$"),
    "list_review_comments": ("GET", r"/pulls/\d+/comments$"),
    "edit_comment": ("PATCH", r"/issues/comments/\d+$"),
}
#: Our fault names, and what they are called on each side.
_EMULATOR_KINDS = {
    "drop_response": "drop_after_apply",
    "fail_before_apply": "error_502_before_apply",
}
_MEMORY_KINDS = {"drop_response": "drop", "fail_before_apply": "fail", "refuse": "refuse"}
#: "Until cleared" for the memory twin, whose fault queues are finite.
_PERSISTENT = 1_000


class Died(BaseException):
    """The process died here (not an Exception: nothing in the code may catch it)."""


class Calls(dict[str, int]):
    """Calls that reached GitHub, per `Forge` operation (only non-zero counts)."""

    @property
    def reads(self) -> int:
        """Read calls: permission lookups and reconciliation (listing comments, finding a PR)."""
        return sum(n for op, n in self.items() if op in READS)

    @property
    def mutations(self) -> int:
        """Everything else: comments, labels, pull requests."""
        return sum(n for op, n in self.items() if op not in READS)


class World:
    """What a scenario needs of GitHub; see the module docstring."""

    name: str
    forge: Forge
    #: An open issue by the trusted user, before any scenario acts on it.
    issue: int

    async def new_issue(self) -> int:
        """Open another issue as the trusted user; returns its number."""
        raise NotImplementedError

    async def comments(self, issue: int) -> list[Comment]:
        """The issue's comments as GitHub holds them, oldest first (id, body, author)."""
        raise NotImplementedError

    async def labels(self, issue: int) -> set[str]:
        """The issue's label names."""
        raise NotImplementedError

    async def post_as(self, user: str, issue: int, body: str) -> int:
        """A comment written by `user` (not by the core: not counted as a call); its id."""
        raise NotImplementedError

    async def pulls(self) -> list[PullRequest]:
        """Every pull request of the repository, oldest first."""
        raise NotImplementedError

    async def open_pull(self, head: str, *, author: str = BOT) -> int:
        """A pull request from `head` opened outside this core (an earlier attempt, or
        someone else's)."""
        raise NotImplementedError

    async def calls(self) -> Calls:
        """Calls that reached GitHub since the world was made (or `reset_calls`)."""
        raise NotImplementedError

    async def review(
        self, pr: int, comments: list[tuple[str, int, str]], *, author: str = TRUSTED
    ) -> tuple[int, list[int]]:
        """A `changes_requested` review by `author` with line comments `(path, line, body)`
        (not a call of the core's); its id and its comments' ids."""
        raise NotImplementedError

    async def fail_checks(self, sha: str, runs: list[CheckRun]) -> None:
        """Checks on commit `sha` completed as `runs` say."""
        raise NotImplementedError

    async def thread_replies(self, pr: int) -> list[ReviewComment]:
        """Every reply in the pull request's review threads, oldest first."""
        raise NotImplementedError

    async def reset_calls(self) -> None:
        """Count calls (and fired faults) from zero."""
        raise NotImplementedError

    async def drop_response(self, op: str) -> None:
        """The next `op` is applied by GitHub, then its response is lost."""
        raise NotImplementedError

    async def fail_before_apply(self, op: str, *, times: int | None = 1) -> None:
        """The next `times` `op`s (None: until cleared) answer 502 without being applied."""
        raise NotImplementedError

    async def refuse(self, op: str, status: int, *, times: int | None = None) -> None:
        """The next `times` `op`s (None: until cleared) are refused definitely with
        `status` (422 validation, 403 a locked issue, 410 a deleted one), not applied."""
        raise NotImplementedError

    async def slow_down(self, op: str, seconds: float) -> None:
        """Every `op` takes `seconds` longer (until cleared)."""
        raise NotImplementedError

    async def clear_faults(self) -> None:
        """Remove every injected fault (what fired stays counted)."""
        raise NotImplementedError

    async def faults_fired(self) -> dict[str, int]:
        """Injected faults that hit, as "kind op" (e.g. "drop_response create_comment")."""
        raise NotImplementedError

    def uncertain(self) -> int:
        """Uncertain outcomes the forge reported to the core since the world was made
        (a response lost, a 5xx on a mutation); `reset_calls` leaves this alone."""
        raise NotImplementedError

    async def another_forge(self) -> Forge:
        """A second worker's forge onto the same GitHub."""
        raise NotImplementedError

    def crash_after_apply(self, op: str) -> None:
        """The next `op` reaches GitHub and is applied; then the process dies (`Died`)."""
        forge: Any = self.forge
        real: Callable[..., Awaitable[Any]] = getattr(forge, op)

        async def apply_then_die(*args: Any, **kwargs: Any) -> Any:
            delattr(forge, op)  # once: the next call is the real one again
            await real(*args, **kwargs)
            raise Died

        setattr(forge, op, apply_then_die)


class MemoryWorld(World):
    """The recording twin: GitHub is a few dicts in this process."""

    name = "memory"

    def __init__(self) -> None:
        self.memory = MemoryForge(permissions={TRUSTED: "write", UNTRUSTED: "read"})
        self.forge = self.memory
        self._issues = itertools.count(1)
        self._pull_numbers = itertools.count(900)
        self._injected: Counter[tuple[str, str]] = Counter()
        self._fired: Counter[str] = Counter()  # fired before `clear_faults` dropped the queues
        self._uncertain_before_reset = 0
        self.issue = next(self._issues)

    async def new_issue(self) -> int:
        return next(self._issues)

    async def comments(self, issue: int) -> list[Comment]:
        return list(self.memory.comments[(REPO, issue)])

    async def labels(self, issue: int) -> set[str]:
        return set(self.memory.labels[(REPO, issue)])

    async def post_as(self, user: str, issue: int, body: str) -> int:
        return self.memory.post_as(user, REPO, issue, body)

    async def pulls(self) -> list[PullRequest]:
        return list(self.memory.pulls[REPO])

    async def open_pull(self, head: str, *, author: str = BOT) -> int:
        number = next(self._pull_numbers)
        self.memory.pulls[REPO].append(PullRequest(number=number, head=head, author=author))
        return number

    async def calls(self) -> Calls:
        return Calls({op: n for op, n in sorted(self.memory.calls.items()) if n})

    async def review(
        self, pr: int, comments: list[tuple[str, int, str]], *, author: str = TRUSTED
    ) -> tuple[int, list[int]]:
        return self.memory.review_as(author, REPO, pr, comments)

    async def fail_checks(self, sha: str, runs: list[CheckRun]) -> None:
        self.memory.set_check_runs(REPO, sha, runs)

    async def thread_replies(self, pr: int) -> list[ReviewComment]:
        return [c for c in self.memory.review_threads[(REPO, pr)] if c.in_reply_to_id]

    async def reset_calls(self) -> None:
        self._uncertain_before_reset = self.uncertain()
        self.memory.calls.clear()
        self._fired.clear()
        self._injected = Counter(self._pending())

    async def drop_response(self, op: str) -> None:
        self._inject(op, "drop_response", 1)

    async def fail_before_apply(self, op: str, *, times: int | None = 1) -> None:
        self._inject(op, "fail_before_apply", _PERSISTENT if times is None else times)

    async def refuse(self, op: str, status: int, *, times: int | None = None) -> None:
        count = _PERSISTENT if times is None else times
        self.memory.inject(op, f"refuse:{status}", count)
        self._injected[(op, "refuse")] += count

    async def slow_down(self, op: str, seconds: float) -> None:
        real: Callable[..., Awaitable[Any]] = getattr(self.memory, op)

        async def slow(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(seconds)
            return await real(*args, **kwargs)

        setattr(self.memory, op, slow)

    async def clear_faults(self) -> None:
        self._fired = self._fired_now()
        self.memory.faults.clear()
        self._injected.clear()
        for op in ENDPOINTS:
            vars(self.memory).pop(op, None)  # slowed-down operations

    async def faults_fired(self) -> dict[str, int]:
        return {key: n for key, n in sorted(self._fired_now().items()) if n}

    def uncertain(self) -> int:
        # The twin reports an uncertain outcome exactly when a drop or fail fault fires.
        fired = self._fired_now()
        return self._uncertain_before_reset + sum(
            n for key, n in fired.items() if not key.startswith("refuse ")
        )

    async def another_forge(self) -> Forge:
        return self.memory  # one GitHub: every worker's calls land in the same twin

    def _inject(self, op: str, kind: str, times: int) -> None:
        self.memory.inject(op, _MEMORY_KINDS[kind], times)
        self._injected[(op, kind)] += times

    def _fired_now(self) -> Counter[str]:
        fired = Counter(self._fired)
        pending = self._pending()
        for (op, kind), n in self._injected.items():
            fired[f"{kind} {op}"] += n - pending[(op, kind)]
        return fired

    def _pending(self) -> Counter[tuple[str, str]]:
        names = {v: k for k, v in _MEMORY_KINDS.items()}
        return Counter(
            (op, names[kind.partition(":")[0]])
            for op, queue in self.memory.faults.items()
            for kind in queue
        )


class EmulatorWorld(World):
    """The real adapter over HTTP against the GitHub emulator (webhooks off)."""

    name = "emulator"

    def __init__(self, emu: EmulatorServer, forge: GitHubForge, stack: AsyncExitStack) -> None:
        self.emu = emu
        self.github = forge
        self.forge = forge
        self._stack = stack
        self.issue = 0

    async def new_issue(self) -> int:
        return await self.emu.admin.create_issue(REPO, "Add widgets", author=TRUSTED)

    async def comments(self, issue: int) -> list[Comment]:
        return [Comment(c.id, c.body, c.author) for c in await self.emu.admin.comments(REPO, issue)]

    async def labels(self, issue: int) -> set[str]:
        return set(await self.emu.admin.labels(REPO, issue))

    async def post_as(self, user: str, issue: int, body: str) -> int:
        return (await self.emu.admin.comment(REPO, issue, body, user=user)).id

    async def pulls(self) -> list[PullRequest]:
        found = []
        for view in await self.emu.admin.pulls(REPO):
            assert view.pull is not None
            found.append(PullRequest(view.number, view.pull.head, view.state, view.pull.merged))
        return found

    async def open_pull(self, head: str, *, author: str = BOT) -> int:
        acted = await self.emu.admin.open_pull(
            REPO, head=head, title="Earlier attempt", user=author
        )
        return acted.id

    async def review(
        self, pr: int, comments: list[tuple[str, int, str]], *, author: str = TRUSTED
    ) -> tuple[int, list[int]]:
        reviewed = await self.emu.admin.submit_review(
            REPO,
            pr,
            user=author,
            state="changes_requested",
            body="Please change these.",
            comments=[{"path": p, "line": n, "body": b} for p, n, b in comments],
        )
        return reviewed.id, list(reviewed.comment_ids)

    async def fail_checks(self, sha: str, runs: list[CheckRun]) -> None:
        await self.emu.admin.complete_checks(
            REPO,
            sha,
            [
                {
                    "name": r.name,
                    "conclusion": r.conclusion,
                    "title": r.title,
                    "summary": r.summary,
                    "text": r.text,
                    "annotations": [
                        {"path": "src/x.py", "start_line": 1, "message": a.split(": ", 1)[-1]}
                        for a in r.annotations
                    ],
                }
                for r in runs
            ],
        )

    async def thread_replies(self, pr: int) -> list[ReviewComment]:
        found = await self.emu.admin.review_comments(REPO, pr)
        return [
            ReviewComment(c.id, c.body, c.author, in_reply_to_id=c.in_reply_to_id)
            for c in found
            if c.in_reply_to_id
        ]

    async def calls(self) -> Calls:
        counters = await self.emu.admin.counters()
        return Calls(
            {_OPERATIONS.get(key, key): n for key, n in sorted(counters.requests.items()) if n}
        )

    async def reset_calls(self) -> None:
        await self.emu.admin.reset_counters()

    async def drop_response(self, op: str) -> None:
        method, path = FAULT_PATHS[op]
        await self.emu.admin.add_fault(method, path, _EMULATOR_KINDS["drop_response"])

    async def fail_before_apply(self, op: str, *, times: int | None = 1) -> None:
        method, path = FAULT_PATHS[op]
        kind = _EMULATOR_KINDS["fail_before_apply"]
        await self.emu.admin.add_fault(method, path, kind, times=times)

    async def refuse(self, op: str, status: int, *, times: int | None = None) -> None:
        method, path = FAULT_PATHS[op]
        await self.emu.admin.add_fault(method, path, "refuse", status=status, times=times)

    async def slow_down(self, op: str, seconds: float) -> None:
        method, path = FAULT_PATHS[op]
        await self.emu.admin.add_fault(method, path, "latency", seconds=seconds, times=None)

    async def clear_faults(self) -> None:
        await self.emu.admin.clear_faults()

    async def faults_fired(self) -> dict[str, int]:
        names = {v: k for k, v in _EMULATOR_KINDS.items()}
        fired: Counter[str] = Counter()
        for key, n in (await self.emu.admin.counters()).faults.items():
            kind, endpoint = key.split(" ", 1)
            fired[f"{names.get(kind, kind)} {_OPERATIONS.get(endpoint, endpoint)}"] += n
        return {key: n for key, n in sorted(fired.items()) if n}

    def uncertain(self) -> int:
        return self.github.stats.uncertain

    async def another_forge(self) -> Forge:
        return await self._stack.enter_async_context(github_forge(self.emu))


@asynccontextmanager
async def open_world(name: str) -> AsyncIterator[World]:
    """A world with one open issue by the trusted user; calls are counted from here."""
    if name == "memory":
        yield MemoryWorld()
        return
    async with AsyncExitStack() as stack:
        emu = await stack.enter_async_context(EmulatorServer(token=TOKEN))
        await setup_world(emu)
        forge = await stack.enter_async_context(github_forge(emu))
        world = EmulatorWorld(emu, forge, stack)
        world.issue = await world.new_issue()
        await world.reset_calls()
        yield world
