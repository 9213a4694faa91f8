"""An in-memory forge that records every call: the router's unit-test twin.

Faults can be queued per method: `drop` applies the mutation and then raises
`UncertainOutcome` (the response was lost); `fail` raises it before applying;
`refuse` (or `refuse:<status>`, 422 by default) raises `EffectRefused` before applying,
as GitHub does for a too-long body (422), a locked issue (403) or a deleted one (410).
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from agent_workflow.core.errors import EffectRefused, ForgeError, UncertainOutcome
from agent_workflow.core.ports import Comment, Permission, PullRequest

READS = frozenset({"list_comments", "find_pull_request", "permission", "whoami"})
BOT = "agent-workflow[bot]"
"""The login the twin acts as (what `whoami` answers)."""


@dataclass
class MemoryForge:
    """Recording twin of the `Forge` protocol."""

    permissions: dict[str, Permission] = field(default_factory=dict)
    login: str = BOT  # who the twin's mutations are authored by
    default_permission: Permission = "write"
    comments: dict[tuple[str, int], list[Comment]] = field(
        default_factory=lambda: defaultdict(list)
    )
    labels: dict[tuple[str, int], set[str]] = field(default_factory=lambda: defaultdict(set))
    pulls: dict[str, list[PullRequest]] = field(default_factory=lambda: defaultdict(list))
    calls: Counter[str] = field(default_factory=Counter)
    # Mutations as applied, in order: "method:detail" (a label, a head branch, a comment id).
    log: list[str] = field(default_factory=list)
    faults: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    @property
    def reads(self) -> int:
        """How many read calls were made."""
        return sum(n for name, n in self.calls.items() if name in READS)

    def inject(self, method: str, kind: str, times: int = 1) -> None:
        """Queue a fault (`drop`, `fail`, `refuse[:status]`) for the next `times` calls."""
        self.faults[method].extend([kind] * times)

    def _fault(self, method: str) -> str | None:
        self.calls[method] += 1
        queue = self.faults.get(method)
        fault = queue.pop(0) if queue else None
        if fault is not None and fault.startswith("refuse"):
            status = int(fault.partition(":")[2] or 422)
            raise EffectRefused(f"{method}: {status} refused (injected)", status=status)
        return fault

    def _mutate(self, method: str) -> bool:
        """Returns whether to raise after applying (`drop`)."""
        fault = self._fault(method)
        if fault == "fail":
            raise UncertainOutcome(f"{method}: 502 before apply (injected)")
        return fault == "drop"

    async def create_comment(self, repo: str, issue_number: int, body: str) -> int:
        """Append a comment."""
        drop = self._mutate("create_comment")
        comment = Comment(next(self._ids), body, self.login)
        self.comments[(repo, issue_number)].append(comment)
        self.log.append(f"create_comment:{comment.id}")
        if drop:
            raise UncertainOutcome("create_comment: response dropped (injected)")
        return comment.id

    async def add_labels(self, repo: str, issue_number: int, labels: Sequence[str]) -> None:
        """Add labels."""
        drop = self._mutate("add_labels")
        self.labels[(repo, issue_number)].update(labels)
        self.log.append(f"add_labels:{','.join(labels)}")
        if drop:
            raise UncertainOutcome("add_labels: response dropped (injected)")

    async def remove_label(self, repo: str, issue_number: int, label: str) -> None:
        """Remove a label; absent is fine."""
        drop = self._mutate("remove_label")
        self.labels[(repo, issue_number)].discard(label)
        self.log.append(f"remove_label:{label}")
        if drop:
            raise UncertainOutcome("remove_label: response dropped (injected)")

    async def open_pull_request(
        self, repo: str, *, head: str, base: str, title: str, body: str
    ) -> PullRequest:
        """Open a PR, adopting an existing open one for the same head."""
        drop = self._mutate("open_pull_request")
        existing = [p for p in self.pulls[repo] if p.head == head and p.state == "open"]
        if existing:
            return existing[0]
        pr = PullRequest(number=next(self._ids), head=head, author=self.login)
        self.pulls[repo].append(pr)
        self.log.append(f"open_pull_request:{head}")
        if drop:
            raise UncertainOutcome("open_pull_request: response dropped (injected)")
        return pr

    async def find_pull_request(self, repo: str, head: str) -> PullRequest | None:
        """Find a PR by head in any state."""
        self._fault("find_pull_request")
        return next((p for p in self.pulls[repo] if p.head == head), None)

    async def list_comments(self, repo: str, issue_number: int) -> list[Comment]:
        """All comments of an issue."""
        if self._fault("list_comments") == "fail":
            raise ForgeError("list_comments failed (injected)")
        return list(self.comments[(repo, issue_number)])

    async def permission(self, repo: str, user: str) -> Permission:
        """The configured permission of `user`."""
        self._fault("permission")
        return self.permissions.get(user, self.default_permission)

    async def whoami(self) -> str:
        """Our own login."""
        self._fault("whoami")
        return self.login

    def post_as(self, author: str, repo: str, issue_number: int, body: str) -> int:
        """A comment written by someone else (not a call of ours: neither counted nor logged)."""
        comment = Comment(next(self._ids), body, author)
        self.comments[(repo, issue_number)].append(comment)
        return comment.id

    def bot_comments(self, repo: str, issue_number: int) -> list[Comment]:
        """Comments on an issue written by the twin's login."""
        return [c for c in self.comments[(repo, issue_number)] if c.author == self.login]
