"""`aw demo`: drive issues through plan → /approve → deliver → merge → compound, offline.

The GitHub emulator runs in this process and sends signed webhooks to a real
`aw serve` child process (embedded mode, SQLite, scripted agent), exactly as
GitHub would. Along the way it redelivers a webhook (a duplicate), lets an
untrusted user try `/approve`, blocks one plan and retries it, and SIGKILLs the
server in the middle of a deliver phase, then restarts it. Before the first pull
request is merged, a reviewer requests changes with two line comments (a review
round: one reply per thread and one summary; the review's webhook is redelivered)
and the checks on the round's commit fail (a CI repair round). It prints the
timeline and a summary; the exit code is non-zero if any effect, round or reply
is duplicated or any issue did not finish.
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from agent_workflow.core.effects import effect_key
from agent_workflow.core.model import BRANCH_PREFIX, LIFECYCLE, Phase, PhaseStatus
from agent_workflow.core.ports import Round
from agent_workflow.demo.process import AwProcess, free_port
from agent_workflow.store import Store, connect
from github_emulator import EmulatorServer
from github_emulator.client import EmulatorAdmin, IssueView, ReviewCommentView

REPO = "demo/widgets"
USER, STRANGER, BOT = "alice", "mallory", "agent-workflow[bot]"
SECRET, TOKEN = "demo-webhook-secret", "demo-token"
MARKER = re.compile(r"<!-- agent-workflow:effect=(\S+) sig=[0-9a-f]{64} -->")
# The triggers the demo's people use, set explicitly so an AW_* in the caller's
# environment cannot make the server listen for other words.
PLAN_LABEL, APPROVE, RETRY = "agent", "/approve", "/retry"
# Short leases so the kill-and-restart recovers in seconds, not a minute.
DEMO_ENV = {
    "AW_PLAN_LABEL": PLAN_LABEL,
    "AW_APPROVE_COMMAND": APPROVE,
    "AW_RETRY_COMMAND": RETRY,
    "AW_AGENT": "scripted",
    "AW_SCRIPTED_DURATION_S": "1.5",
    "AW_LEASE_S": "3",
    "AW_HEARTBEAT_S": "1",
    "AW_SWEEP_INTERVAL_S": "1",
    "AW_SWEEP_GRACE_S": "2",
    "AW_GITHUB_MUTATION_INTERVAL_S": "0",
    "AW_BOT_LOGIN": BOT,
    "AW_LOG_JSON": "1",
}
# The review round: a reviewer's two line comments, each a thread the agent answers once.
REVIEW_COMMENTS = (
    {"path": "src/widget.py", "line": 3, "body": "Please give this magic number a name."},
    {"path": "src/widget.py", "line": 7, "body": "This loop can stop at the first match."},
)
# The CI repair round: what fails on the review round's commit.
FAILING_CHECKS = (
    {
        "name": "tests",
        "conclusion": "failure",
        "title": "1 test failed",
        "summary": "test_widget_is_fast failed",
        "annotations": [
            {
                "path": "tests/test_widget.py",
                "start_line": 12,
                "message": "AssertionError: too slow",
            }
        ],
    },
    {"name": "lint", "conclusion": "success", "title": "lint passed"},
)
PASSING_CHECKS = (
    {"name": "tests", "conclusion": "success", "title": "all tests passed"},
    {"name": "lint", "conclusion": "success", "title": "lint passed"},
)


@dataclass
class Timeline:
    """What happened, when (seconds since the start)."""

    started: float = field(default_factory=time.monotonic)
    entries: list[tuple[float, str]] = field(default_factory=list)

    def add(self, what: str) -> None:
        """Record one step."""
        self.entries.append((round(time.monotonic() - self.started, 2), what))


class Demo:
    """One demo run: the emulator, the `aw serve` child, and the scenario."""

    def __init__(self, workdir: Path, admin: EmulatorAdmin, env: dict[str, str], url: str) -> None:
        self.workdir = workdir
        self.admin = admin
        self.url = url
        self.server = AwProcess("serve", env, workdir / "serve.log")
        self.timeline = Timeline()
        self.deliveries_sent = 0
        self.duplicates_sent = 0
        self.kills = 0
        self.store: Store | None = None

    async def start_server(self) -> None:
        await self.server.start()
        await self.server.wait_healthy(self.url)
        self.timeline.add(f"aw serve started (pid {self.server.pid})")

    async def wait_for(
        self, issue: int, needle: str, timeout_s: float = 60.0, *, pr: int | None = None
    ) -> None:
        """Wait until a bot comment containing `needle` is on the issue (or its PR `pr`)."""
        deadline = time.monotonic() + timeout_s
        where = issue if pr is None else pr
        while time.monotonic() < deadline:
            comments = await self.admin.comments(REPO, where)
            if any(needle in c.body for c in comments):
                on = "" if pr is None else f" on PR #{pr}"
                self.timeline.add(f"#{issue}: bot commented '{needle}'{on}")
                return
            await asyncio.sleep(0.2)
        sent = [(d.event, d.action, d.status_code, d.error) for d in await self.admin.deliveries()]
        raise TimeoutError(
            f"#{issue}: no comment with {needle!r} after {timeout_s} s; deliveries: {sent}"
        )

    async def phase_status(self, issue: int, phase: Phase) -> PhaseStatus | None:
        assert self.store is not None
        task = await self.store.tasks.find(REPO, issue)
        run = await self.store.phases.get(task.id, phase) if task else None
        return run.status if run else None

    async def act(self, what: str, issue: int, coro: Any) -> Any:
        acted = await coro
        self.deliveries_sent += len(acted.deliveries)
        self.timeline.add(f"#{issue}: {what}")
        return acted

    async def lifecycle(
        self, issue: int, *, kill_mid_deliver: bool, blocked_plan: bool, rounds: bool = False
    ) -> None:
        labelled = await self.act(
            f"{USER} adds label '{PLAN_LABEL}'",
            issue,
            self.admin.add_label(REPO, issue, PLAN_LABEL, user=USER),
        )
        if blocked_plan:
            await self.wait_for(issue, "agent-blocked")
            await self.act(
                f"{USER} comments {RETRY}",
                issue,
                self.admin.comment(REPO, issue, RETRY, user=USER),
            )
        await self.wait_for(issue, "Implementation plan")
        for delivery in labelled.deliveries:
            copies = await self.admin.redeliver(delivery.id)
            self.duplicates_sent += len(copies)
            self.timeline.add(f"#{issue}: webhook {delivery.id[:8]} redelivered (duplicate)")
        await self.act(
            f"{STRANGER} (read-only) comments {APPROVE}: ignored",
            issue,
            self.admin.comment(REPO, issue, APPROVE, user=STRANGER),
        )
        await self.act(
            f"{USER} comments {APPROVE}",
            issue,
            self.admin.comment(REPO, issue, APPROVE, user=USER),
        )
        if kill_mid_deliver:
            await self.kill_and_restart_during(issue, Phase.DELIVER)
        await self.wait_for(issue, "Opened pull request")
        pulls = [p for p in await self.admin.pulls(REPO) if _head(p) == _branch(issue)]
        if rounds:
            await self.review_round(issue, pulls[0].number)
            await self.repair_round(issue, pulls[0].number)
        await self.act(
            f"{USER} merges PR #{pulls[0].number}",
            issue,
            self.admin.merge_pull(REPO, pulls[0].number, user=USER),
        )
        await self.wait_for(issue, "What we learned")

    async def review_round(self, issue: int, pr: int) -> None:
        """A trusted reviewer requests changes with two line comments; the review's webhook
        is redelivered (a duplicate). One round: one reply per thread, one summary."""
        reviewed = await self.admin.submit_review(
            REPO,
            pr,
            user=USER,
            state="changes_requested",
            body="Two things before this goes in.",
            comments=REVIEW_COMMENTS,
        )
        self.deliveries_sent += len(reviewed.deliveries)
        self.timeline.add(
            f"#{issue}: {USER} requests changes on PR #{pr} (review {reviewed.id}, "
            f"{len(reviewed.comment_ids)} line comments)"
        )
        for delivery in reviewed.deliveries:
            if delivery.event == "pull_request_review":
                copies = await self.admin.redeliver(delivery.id)
                self.duplicates_sent += len(copies)
                self.timeline.add(
                    f"#{issue}: review webhook {delivery.id[:8]} redelivered (duplicate)"
                )
        await self.wait_for(issue, "## Review round 1", pr=pr)
        for comment_id in reviewed.comment_ids:
            replies = [r for r in await self.admin.replies(REPO, pr, comment_id) if r.author == BOT]
            self.timeline.add(
                f"#{issue}: {len(replies)} bot reply in the thread of review comment {comment_id}"
            )

    async def repair_round(self, issue: int, pr: int) -> None:
        """The checks on the review round's commit fail: one CI repair round. Its commit
        then passes (nothing more happens)."""
        head = await self.head_sha(issue)
        await self.move_head(issue, head, "the review round's")
        await self.act(
            f"checks fail on {head[:7]} (tests)",
            issue,
            self.admin.complete_checks(REPO, head, FAILING_CHECKS),
        )
        await self.wait_for(issue, "## CI repair round 1", pr=pr)
        repaired = await self.head_sha(issue)
        await self.move_head(issue, repaired, "the repair round's")
        await self.act(
            f"checks pass on {repaired[:7]}: nothing to repair",
            issue,
            self.admin.complete_checks(REPO, repaired, PASSING_CHECKS),
        )

    async def head_sha(self, issue: int) -> str:
        """The commit the task last pushed (as the service recorded it)."""
        assert self.store is not None
        task = await self.store.tasks.find(REPO, issue)
        if task is None or not task.head_sha:
            raise RuntimeError(f"#{issue}: no head commit recorded")
        return task.head_sha

    async def move_head(self, issue: int, sha: str, whose: str) -> None:
        """The scripted agent pushes nothing: move the emulated branch (and its PR) to the
        commit the round recorded, as its `git push` would have."""
        await self.admin.push(REPO, _branch(issue), user=BOT, sha=sha)
        self.timeline.add(f"#{issue}: {_branch(issue)} is at {whose} commit {sha[:7]}")

    async def kill_and_restart_during(self, issue: int, phase: Phase) -> None:
        deadline = time.monotonic() + 30
        while await self.phase_status(issue, phase) is not PhaseStatus.ACTIVE:
            if time.monotonic() > deadline:
                raise TimeoutError(f"#{issue}: {phase} never became active")
            await asyncio.sleep(0.05)
        await self.server.kill()
        self.kills += 1
        self.timeline.add(f"#{issue}: SIGKILL aw serve in the middle of {phase}")
        await self.start_server()

    async def rounds_of(self, issue: int) -> list[Round]:
        assert self.store is not None
        task = await self.store.tasks.find(REPO, issue)
        return await self.store.rounds.all(task.id) if task else []

    async def summary(self, issues: list[int], with_rounds: set[int]) -> dict[str, Any]:
        per_issue: list[dict[str, Any]] = []
        duplicates = 0
        pulls = await self.admin.pulls(REPO)
        heads = Counter(_head(p) for p in pulls)
        duplicates += sum(n - 1 for n in heads.values())
        for issue in issues:
            numbers = [p.number for p in pulls if _head(p) == _branch(issue)]
            comments = [c for c in await self.admin.comments(REPO, issue) if c.author == BOT]
            pr_comments = [
                c for n in numbers for c in await self.admin.comments(REPO, n) if c.author == BOT
            ]
            replies = [
                r
                for n in numbers
                for r in await self.admin.review_comments(REPO, n)
                if r.author == BOT and r.in_reply_to_id is not None
            ]
            keys = Counter(
                m.group(1)
                for body in [c.body for c in comments + pr_comments] + [r.body for r in replies]
                for m in [MARKER.search(body)]
                if m
            )
            duplicates += sum(n - 1 for n in keys.values())
            rounds = await self.rounds_of(issue)
            duplicates += _duplicate_rounds(rounds) + _duplicate_replies(replies)
            phases = {p.value: str(await self.phase_status(issue, p)) for p in LIFECYCLE}
            for phase in (Phase.REVISE, Phase.REPAIR):
                if (status := await self.phase_status(issue, phase)) is not None:
                    phases[phase.value] = str(status)
            per_issue.append(
                {
                    "issue": issue,
                    "bot_comments": len(comments),
                    "pr_bot_comments": len(pr_comments),
                    "labels": sorted(await self.admin.labels(REPO, issue)),
                    "pull_requests": numbers,
                    "phases": phases,
                    "rounds": [
                        {
                            "phase": r.phase.value,
                            "number": r.number,
                            "trigger": r.work.trigger.key,
                            "threads": len(r.work.comments),
                            "failing_checks": sorted(c.name for c in r.work.checks),
                            "pushed": (r.pushed_sha or "")[:7],
                            "replies": _replies_of(issue, r, replies),
                        }
                        for r in rounds
                    ],
                    "replies": len(replies),
                }
            )
        finished = all(
            i["phases"][Phase.COMPOUND.value] == PhaseStatus.COMPLETE.value
            and (i["issue"] not in with_rounds or _rounds_done(i))
            for i in per_issue
        )
        return {
            "issues": per_issue,
            "webhooks_sent": self.deliveries_sent,
            "duplicate_deliveries_sent": self.duplicates_sent,
            "kills": self.kills,
            "duplicates": duplicates,
            "all_complete": finished,
        }


async def run_demo(*, as_json: bool = False, issues: int = 2) -> int:
    """Run the demo; return the process exit code (0: all complete, no duplicates)."""
    workdir = Path(tempfile.mkdtemp(prefix="aw-demo-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    console = Console(stderr=as_json)
    async with EmulatorServer(
        token=TOKEN, bot_login=BOT, webhook_url=f"{url}/webhooks/github", webhook_secret=SECRET
    ) as emu:
        env = {
            **DEMO_ENV,
            "AW_DATABASE_URL": f"sqlite:///{workdir / 'demo.db'}",
            "AW_GITHUB_API_URL": emu.url,
            "AW_GITHUB_TOKEN": TOKEN,
            "AW_WEBHOOK_SECRET": SECRET,
            "AW_PORT": str(port),
            "AW_CONFIG_FILE": str(workdir / "none.toml"),
        }
        await emu.admin.create_repo(REPO)
        await emu.admin.set_permission(REPO, USER, "write")
        await emu.admin.set_permission(REPO, STRANGER, "read")
        demo = Demo(workdir, emu.admin, env, url)
        await demo.start_server()
        demo.store = await connect(env["AW_DATABASE_URL"])
        try:
            numbers = []
            for i in range(issues):
                body = "Please make the widget faster."
                if i == 1:
                    body += "\n\nagent-test: block plan"  # the scripted agent blocks once
                numbers.append(
                    await emu.admin.create_issue(
                        REPO, f"Widget task {i + 1}", body=body, author=USER
                    )
                )
            # One issue after the other: a webhook sent while the server is down
            # would be lost, as on GitHub (which does not retry by itself).
            for i, n in enumerate(numbers):
                await demo.lifecycle(
                    n, kill_mid_deliver=(i == 0), blocked_plan=(i == 1), rounds=(i == 0)
                )
            summary = await demo.summary(numbers, with_rounds=set(numbers[:1]))
        finally:
            await demo.server.stop()
            if demo.store is not None:
                await demo.store.close()
    summary["workdir"] = str(workdir)
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        _print(console, demo.timeline, summary)
    return 0 if summary["duplicates"] == 0 and summary["all_complete"] else 1


def _duplicate_rounds(rounds: list[Round]) -> int:
    """Rounds beyond the first per trigger (review id, comment id, head commit)."""
    keys = Counter((r.phase, r.work.trigger.key) for r in rounds)
    return sum(n - 1 for n in keys.values())


def _duplicate_replies(replies: list[ReviewCommentView]) -> int:
    """Bot replies beyond one per review thread (each thread belongs to one review, so to
    one round: one reply per review comment per round)."""
    per_thread = Counter(r.in_reply_to_id for r in replies)
    return sum(n - 1 for n in per_thread.values())


def _replies_of(issue: int, round_: Round, replies: list[ReviewCommentView]) -> int:
    """The bot replies this round posted (their markers name its phase attempt)."""
    prefix = effect_key(REPO, issue, round_.phase, round_.attempt, "reply-")
    return sum(1 for r in replies if (m := MARKER.search(r.body)) and m[1].startswith(prefix))


def _rounds_done(issue: dict[str, Any]) -> bool:
    """The demo's rounds all ran: one review round whose threads all got a reply, then one
    CI repair round, both complete."""
    phases = [r["phase"] for r in issue["rounds"]]
    return (
        phases == [Phase.REVISE.value, Phase.REPAIR.value]
        and issue["phases"].get(Phase.REVISE.value) == PhaseStatus.COMPLETE.value
        and issue["phases"].get(Phase.REPAIR.value) == PhaseStatus.COMPLETE.value
        and all(r["replies"] == r["threads"] for r in issue["rounds"])
    )


def _branch(issue: int) -> str:
    return f"{BRANCH_PREFIX}{issue}"


def _head(pull: IssueView) -> str:
    return pull.pull.head if pull.pull is not None else ""


def _print(console: Console, timeline: Timeline, summary: dict[str, Any]) -> None:
    table = Table(title="timeline")
    table.add_column("t (s)", justify="right")
    table.add_column("what happened")
    for t, what in timeline.entries:
        table.add_row(f"{t:.2f}", what)
    console.print(table)
    result = Table(title="summary")
    for col in ("issue", "bot comments", "labels", "pull requests", "phases"):
        result.add_column(col)
    for i in summary["issues"]:
        result.add_row(
            str(i["issue"]),
            str(i["bot_comments"]),
            ", ".join(i["labels"]),
            ", ".join(f"#{n}" for n in i["pull_requests"]),
            ", ".join(f"{k}: {v}" for k, v in i["phases"].items()),
        )
    console.print(result)
    rounds = Table(title="rounds after the pull request")
    for col in ("issue", "round", "trigger", "input", "pushed", "bot replies"):
        rounds.add_column(col)
    for i in summary["issues"]:
        for r in i["rounds"]:
            revise = r["phase"] == Phase.REVISE.value
            rounds.add_row(
                str(i["issue"]),
                f"{r['phase']} {r['number']}",
                r["trigger"][:22],
                f"{r['threads']} review threads"
                if revise
                else "failing: " + ", ".join(r["failing_checks"]),
                r["pushed"],
                str(r["replies"]) if revise else "",
            )
    if rounds.rows:
        console.print(rounds)
    n_rounds = sum(len(i["rounds"]) for i in summary["issues"])
    n_replies = sum(i["replies"] for i in summary["issues"])
    console.print(
        f"rounds: {n_rounds}, review replies: {n_replies}, webhooks sent: "
        f"{summary['webhooks_sent']}, duplicate deliveries: "
        f"{summary['duplicate_deliveries_sent']}, kills: {summary['kills']}, "
        f"[bold]duplicates: {summary['duplicates']}[/bold]"
    )
