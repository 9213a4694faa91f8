"""The system under test, seen from outside: `aw` child processes, the emulator, the database.

Nothing here reaches into a running `aw` process except signals: what the tests
know comes from the emulator's state (what GitHub would show), the database
(`tasks`, `phase_runs`, `agent_runs`, `effects`) and the processes' JSON logs.
Every wait polls with a generous deadline and never asserts on a duration.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sqlalchemy import func, select

from agent_workflow.core.effects import effect_key
from agent_workflow.core.model import Phase, PhaseRun, PhaseStatus, TaskInfo
from agent_workflow.demo.process import AwProcess
from agent_workflow.store import Store
from agent_workflow.store.schema import agent_runs, effects, phase_runs, tasks
from github_emulator import DeliveryInfo, EmulatorAdmin

T = TypeVar("T")

REPO = "acme/widgets"
USER = "alice"
BOT = "agent-workflow[bot]"
SECRET = "acceptance-webhook-secret"
TOKEN = "acceptance-token"
MARKER = re.compile(r"<!-- agent-workflow:effect=(\S+) sig=[0-9a-f]{64} -->")
DEADLINE_S = 60.0
"""Generous bound on any one wait; the happy path takes a few seconds."""
POLL_S = 0.05
ALL_PHASES = (Phase.PLAN, Phase.DELIVER, Phase.COMPOUND)
# The one comment each completed phase posts (the effect names of core/hooks.py).
PHASE_COMMENTS = {
    Phase.PLAN: ("plan-comment",),
    Phase.DELIVER: ("pr-comment",),
    Phase.COMPOUND: ("summary-comment",),
}


@dataclass(frozen=True)
class Timing:
    """The knobs deciding how soon a dead worker's phase is taken over (short, for tests).

    The phase lease is kept no longer than BullMQ's lock (config.py explains why).
    """

    agent_s: float = 2.5
    lease_s: float = 3.0
    heartbeat_s: float = 1.0
    lock_ms: int = 3000
    stalled_ms: int = 1000
    sweep_s: float = 1.0
    sweep_grace_s: float = 2.0
    shutdown_grace_s: float = 25.0

    def env(self) -> dict[str, str]:
        """The `AW_*` variables for these timings."""
        return {
            "AW_SCRIPTED_DURATION_S": str(self.agent_s),
            "AW_LEASE_S": str(self.lease_s),
            "AW_HEARTBEAT_S": str(self.heartbeat_s),
            "AW_LOCK_DURATION_MS": str(self.lock_ms),
            "AW_STALLED_INTERVAL_MS": str(self.stalled_ms),
            "AW_SWEEP_INTERVAL_S": str(self.sweep_s),
            "AW_SWEEP_GRACE_S": str(self.sweep_grace_s),
            "AW_SHUTDOWN_GRACE_S": str(self.shutdown_grace_s),
        }

    def describe(self) -> str:
        """One line for reports."""
        return (
            f"agent {self.agent_s} s, lease {self.lease_s} s, heartbeat {self.heartbeat_s} s, "
            f"lock {self.lock_ms} ms, stalled interval {self.stalled_ms} ms, "
            f"sweep every {self.sweep_s} s (grace {self.sweep_grace_s} s)"
        )


def clean_environ() -> dict[str, str]:
    """This process's environment without any `AW_*` variable (tests set every one they use)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AW_")}


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    what: str,
    *,
    timeout_s: float = DEADLINE_S,
    context: Callable[[], str] | None = None,
) -> T:
    """Poll `probe` until it returns something other than None (or False); fail after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            extra = f"\n{context()}" if context is not None else ""
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}{extra}")
        await asyncio.sleep(POLL_S)


class Processes:
    """Every `aw` child a test starts, by owner name; whatever still runs is killed at the end."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        self.directory = directory
        self.env = env
        self.started: list[AwProcess] = []
        self.owners: dict[str, AwProcess] = {}

    def spawn(self, command: str, owner: str, env: dict[str, str] | None = None) -> AwProcess:
        """A not yet started `aw <command>` whose `AW_OWNER` is `owner`, logging to `<owner>.log`."""
        wanted = {**self.env, **(env or {}), "AW_OWNER": owner}
        proc = AwProcess(command, wanted, self.directory / f"{owner}.log")
        # AwProcess adds os.environ; drop any AW_* the test did not choose itself.
        proc.env = {**clean_environ(), **wanted}
        return proc

    async def start(self, command: str, owner: str, env: dict[str, str] | None = None) -> AwProcess:
        """Spawn and start one process (not yet waiting for it to be ready)."""
        if owner in self.owners:
            raise ValueError(f"owner {owner!r} already used in this test")
        proc = self.spawn(command, owner, env)
        self.started.append(proc)
        self.owners[owner] = proc
        await proc.start()
        return proc

    async def start_serve(
        self, owner: str, url: str, env: dict[str, str] | None = None
    ) -> AwProcess:
        """`aw serve`, once `GET /healthz` answers."""
        proc = await self.start("serve", owner, env)
        await proc.wait_healthy(url, timeout_s=DEADLINE_S)
        return proc

    async def start_worker(self, owner: str, env: dict[str, str] | None = None) -> AwProcess:
        """`aw worker`, once it logged `worker.started`."""
        proc = await self.start("worker", owner, env)
        await self.wait_log(proc, '"worker.started"')
        return proc

    async def wait_log(self, proc: AwProcess, needle: str) -> None:
        """Wait until `needle` appears in the process log; fail if the process exits first."""

        async def probe() -> bool | None:
            assert proc.proc is not None
            if needle in read_log(proc):
                return True
            if proc.proc.returncode is not None:
                raise AssertionError(
                    f"aw {proc.command} ({owner_of(proc)}) exited with {proc.proc.returncode} "
                    f"before logging {needle}\n{self.log_tails()}"
                )
            return None

        await eventually(probe, f"{needle} in {proc.log_path}")

    def by_owner(self, owner: str) -> AwProcess:
        """The process whose `AW_OWNER` is `owner`."""
        try:
            return self.owners[owner]
        except KeyError:
            raise AssertionError(f"no process of this test has owner {owner!r}") from None

    def log_tails(self, lines: int = 25) -> str:
        """The last lines of every process log, for failure messages."""
        parts = []
        for owner, proc in self.owners.items():
            tail = read_log(proc).splitlines()[-lines:]
            parts.append(f"--- {owner} ({proc.log_path}) ---\n" + "\n".join(tail))
        return "\n".join(parts)

    async def aclose(self) -> None:
        """SIGKILL and reap every process still running."""
        for proc in self.started:
            if proc.proc is not None and proc.proc.returncode is None:
                await proc.kill()


def owner_of(proc: AwProcess) -> str:
    """The `AW_OWNER` a process was started with."""
    return proc.env["AW_OWNER"]


def read_log(proc: AwProcess) -> str:
    """Everything a process wrote so far."""
    try:
        return proc.log_path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


@dataclass(frozen=True)
class AgentRun:
    """One `agent_runs` row: an agent started (fresh) or resumed for a phase attempt."""

    id: int
    phase_run_id: int
    phase: Phase
    attempt: int
    fence: int
    session_id: str
    mode: str
    owner: str
    started_at: float
    outcome: str | None


class World:
    """The emulator (as GitHub) and the database, observed together for one repository."""

    def __init__(self, admin: EmulatorAdmin, store: Store, procs: Processes) -> None:
        self.admin = admin
        self.store = store
        self.procs = procs

    # -- acting as people on GitHub ----------------------------------------------------

    async def open_issue(self, title: str, body: str = "Please make the widget faster.") -> int:
        """A new issue by the trusted user."""
        return await self.admin.create_issue(REPO, title, body=body, author=USER)

    async def label_agent(self, issue: int) -> str:
        """The trusted user adds `agent` (starts the plan); returns the delivery id."""
        delivery = await self.label(issue, "agent")
        self._check_accepted([delivery])
        return delivery.id

    async def label(self, issue: int, name: str) -> DeliveryInfo:
        """The trusted user adds label `name`; returns the webhook delivery as answered."""
        acted = await self.admin.add_label(REPO, issue, name, user=USER)
        assert len(acted.deliveries) == 1, acted.deliveries
        return acted.deliveries[0]

    async def approve(self, issue: int) -> None:
        """The trusted user comments `/approve` (starts deliver)."""
        acted = await self.admin.comment(REPO, issue, "/approve", user=USER)
        self._check_accepted(acted.deliveries)

    async def merge(self, issue: int) -> None:
        """The trusted user merges the issue's pull request (starts compound)."""
        pulls = await self.pulls_for(issue)
        assert len(pulls) == 1, f"#{issue}: expected one pull request, found {pulls}"
        acted = await self.admin.merge_pull(REPO, pulls[0], user=USER)
        self._check_accepted(acted.deliveries[:1])

    def _check_accepted(self, deliveries: Iterable[object]) -> None:
        for d in deliveries:
            status = getattr(d, "status_code", None)
            assert status == 202, f"webhook not accepted: {d}\n{self.procs.log_tails()}"

    async def pulls_for(self, issue: int) -> list[int]:
        """Numbers of the pull requests whose head is the issue's branch."""
        pulls = await self.admin.pulls(REPO)
        head = TaskInfo(REPO, issue).branch
        return [p.number for p in pulls if p.pull is not None and p.pull.head == head]

    # -- the database ----------------------------------------------------------------------

    async def task_id(self, issue: int) -> int | None:
        """The task of an issue, if routing created it."""
        task = await self.store.tasks.find(REPO, issue)
        return task.id if task is not None else None

    async def phase(self, issue: int, phase: Phase) -> PhaseRun | None:
        """The `phase_runs` row of one phase of an issue."""
        task_id = await self.task_id(issue)
        return None if task_id is None else await self.store.phases.get(task_id, phase)

    async def agent_runs(self, issue: int, phase: Phase | None = None) -> list[AgentRun]:
        """The issue's `agent_runs` rows, oldest first."""
        stmt = (
            select(agent_runs, phase_runs.c.phase)
            .join(phase_runs, phase_runs.c.id == agent_runs.c.phase_run_id)
            .join(tasks, tasks.c.id == phase_runs.c.task_id)
            .where(tasks.c.repo == REPO, tasks.c.issue_number == issue)
            .order_by(agent_runs.c.id)
        )
        if phase is not None:
            stmt = stmt.where(phase_runs.c.phase == phase.value)
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [
            AgentRun(
                id=r["id"],
                phase_run_id=r["phase_run_id"],
                phase=Phase(r["phase"]),
                attempt=r["attempt"],
                fence=r["fence"],
                session_id=r["session_id"],
                mode=r["mode"],
                owner=r["owner"],
                started_at=r["started_at"],
                outcome=r["outcome"],
            )
            for r in rows
        ]

    async def wait_agent(
        self,
        issue: int,
        phase: Phase,
        *,
        mode: str = "fresh",
        after: int = 0,
    ) -> AgentRun:
        """Wait for an agent run of `phase` started after row id `after` that is still running.

        Running: no outcome yet, and the phase is active under that run's fence.
        """

        async def probe() -> AgentRun | None:
            run = await self.phase(issue, phase)
            if run is None or run.status is not PhaseStatus.ACTIVE:
                return None
            for row in await self.agent_runs(issue, phase):
                if (
                    row.id > after
                    and row.mode == mode
                    and row.outcome is None
                    and row.fence == run.fence
                ):
                    return row
            return None

        return await eventually(
            probe, f"#{issue}: a running {mode} agent in {phase}", context=self.procs.log_tails
        )

    async def wait_done(self, issue: int, phase: Phase) -> PhaseRun:
        """Wait until the phase is complete with every effect performed."""

        async def probe() -> PhaseRun | None:
            run = await self.phase(issue, phase)
            if run is None:
                return None
            if run.status in (PhaseStatus.BLOCKED, PhaseStatus.FAILED):
                raise AssertionError(
                    f"#{issue}: {phase} ended {run.status}: {run.blocked_reason}\n"
                    f"{self.procs.log_tails()}"
                )
            return run if run.status is PhaseStatus.COMPLETE and run.effects_done else None

        return await eventually(
            probe, f"#{issue}: {phase} complete with its effects", context=self.procs.log_tails
        )

    async def finish_lifecycle(self, issue: int, after: Phase) -> None:
        """Drive the issue from the end of `after` to compound complete (each phase waited for)."""
        await self.wait_done(issue, after)
        if after is Phase.PLAN:
            await self.approve(issue)
            await self.wait_done(issue, Phase.DELIVER)
        if after in (Phase.PLAN, Phase.DELIVER):
            await self.merge(issue)
            await self.wait_done(issue, Phase.COMPOUND)

    # -- the guarantees ------------------------------------------------------------------

    async def assert_guarantees(self, issue: int, phases: Iterable[Phase] = ALL_PHASES) -> None:
        """G1–G3 for one issue, from the database and from what GitHub shows.

        One task; each phase in `phases` complete with its effects done; at most one
        `fresh` agent run per (phase run, attempt) and exactly one per phase that ran;
        every effect key on GitHub at most once, the phase comments exactly once; one
        pull request when deliver ran; no effect left `started`.
        """
        phases = tuple(phases)
        async with self.store.engine.connect() as conn:
            n_tasks = (
                await conn.execute(
                    select(func.count())
                    .select_from(tasks)
                    .where(tasks.c.repo == REPO, tasks.c.issue_number == issue)
                )
            ).scalar_one()
        assert n_tasks == 1, f"#{issue}: {n_tasks} task rows (G1)"
        task_id = await self.task_id(issue)
        assert task_id is not None

        for phase in phases:
            run = await self.phase(issue, phase)
            assert run is not None, f"#{issue}: no {phase} phase run"
            assert run.status is PhaseStatus.COMPLETE, f"#{issue}: {phase} is {run.status}"
            assert run.effects_done, f"#{issue}: {phase} effects outstanding"

        runs = await self.agent_runs(issue)
        fresh = Counter((r.phase_run_id, r.attempt) for r in runs if r.mode == "fresh")
        assert all(n == 1 for n in fresh.values()), f"#{issue}: fresh agent runs {fresh} (G2)"
        started = {r.phase for r in runs if r.mode == "fresh"}
        assert started >= set(phases), f"#{issue}: fresh runs only for {started} (G2)"

        comments = [c for c in await self.admin.comments(REPO, issue) if c.author == BOT]
        keys = Counter(m.group(1) for c in comments for m in MARKER.finditer(c.body))
        unmarked = [c.body[:60] for c in comments if not MARKER.search(c.body)]
        assert not unmarked, f"#{issue}: bot comments without an effect marker: {unmarked}"
        duplicated = {k: n for k, n in keys.items() if n > 1}
        assert not duplicated, f"#{issue}: duplicated effects on GitHub {duplicated} (G3)"
        for phase in phases:
            for name in PHASE_COMMENTS[phase]:
                key = effect_key(REPO, issue, phase, 1, name)
                assert keys[key] == 1, f"#{issue}: {key} posted {keys[key]} times (G3)"
        pulls = await self.pulls_for(issue)
        expected_pulls = 1 if Phase.DELIVER in phases else 0
        assert len(pulls) == expected_pulls, f"#{issue}: pull requests {pulls} (G3)"

        async with self.store.engine.connect() as conn:
            open_effects = (
                (
                    await conn.execute(
                        select(effects.c.key).where(
                            effects.c.task_id == task_id, effects.c.status != "done"
                        )
                    )
                )
                .scalars()
                .all()
            )
        assert not open_effects, f"#{issue}: effects not done: {open_effects}"
