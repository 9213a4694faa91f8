"""The users of a chaos run: they walk each issue through its lifecycle, like people would.

A trusted user labels the issue `agent`, waits for the plan, comments
`/approve`, waits for the pull request, merges it and waits for the summary;
whenever a phase ends blocked or failed she comments `/retry`. Some issues
also get noise: an `/approve` before the plan exists, and an untrusted
user's `/approve`. Before merging, some pull requests get rounds: a
`changes_requested` review with two line comments (a revise round), failing
checks on the head the task last pushed (a repair round; the emulated branch is
first moved to that commit, since the scripted agent pushes nothing), a second
one of either, and on some a review past the round limit; each waits until its
webhooks are routed and the task's phases are settled. What the users see is read from the database in one query
per poll (the phase states and the PR number); every action goes through the
emulator, which sends the signed webhook to `aw serve` before returning.

A webhook `aw serve` did not acknowledge is redelivered, as an operator would
from GitHub's "Recent deliveries" page (GitHub never retries by itself).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Final, Protocol

from sqlalchemy import select

from agent_workflow.store import Store
from agent_workflow.store.schema import deliveries, phase_runs, tasks
from chaos.config import ChaosConfig
from chaos.world import BOT, REPO, STRANGER, USER, Timeline
from github_emulator.client import DeliveryInfo, EmulatorAdmin

POLL_S: Final = 0.25
"""How often the users look at their issues (one database query for all of them)."""

REDELIVER_AFTER_S: Final = 1.0
"""How long an operator waits before redelivering a webhook that was not acknowledged."""

LABEL_ATTEMPTS: Final = 3
"""A label the emulator refused (a harness-side hiccup) is tried again, then given up on."""

LATEST_FIRST: Final = ("compound", "deliver", "plan")

REVIEW, CHECKS = "review", "checks"
"""The round steps a PR may get before it is merged."""
ROUND_TRIGGERS: Final = frozenset({"pull_request_review", "check_suite", "check_run"})
"""The webhooks of a round step that the service stores (the rest it ignores at the door)."""
REVIEW_COMMENTS: Final = (
    {"path": "src/widget.py", "line": 3, "body": "Please give this number a name."},
    {"path": "src/widget.py", "line": 9, "body": "This loop can stop at the first match."},
)


class _Acted(Protocol):
    @property
    def deliveries(self) -> list[DeliveryInfo]: ...


@dataclass(frozen=True)
class PhaseView:
    """One phase of a task as the users poll it."""

    status: str
    attempt: int
    effects_done: bool

    @property
    def settled(self) -> bool:
        """Final with every effect performed: what a user sees as "the bot is done"."""
        return self.status in ("complete", "blocked", "failed") and self.effects_done


@dataclass(frozen=True)
class TaskView:
    """A task's phases, PR number and the head commit it last pushed."""

    pr_number: int | None
    phases: dict[str, PhaseView]
    head_sha: str | None = None

    @property
    def settled(self) -> bool:
        """Every phase (rounds too) final with its effects done."""
        return all(p.settled for p in self.phases.values())


@dataclass(frozen=True)
class SentDelivery:
    """A webhook the users' actions caused."""

    id: str
    event: str
    action: str
    issue: int
    what: str


@dataclass
class IssueState:
    """Where the users are with one issue."""

    number: int
    steer: tuple[str, ...]
    noise: bool
    rounds: tuple[str, ...] = ()
    """Round steps before the merge, in order: `review` or `checks:<failure case>`."""
    started_at: float | None = None
    labelled: bool = False
    approved: bool = False
    merged: bool = False
    retried: set[tuple[str, int]] = field(default_factory=set)
    done_at: float | None = None
    rounds_sent: int = 0
    waiting: tuple[str, ...] = ()
    """Delivery ids of the last round step not yet routed."""

    @property
    def body(self) -> str:
        """The issue body, with the scripted agent's steering lines."""
        lines = ["Please make the widget faster."]
        lines += [f"agent-test: {s}" for s in self.steer]
        return "\n\n".join(lines)


class Users:
    """Drives every issue of the run to the end of its lifecycle."""

    def __init__(
        self,
        config: ChaosConfig,
        admin: EmulatorAdmin,
        store: Store,
        timeline: Timeline,
        rng: random.Random,
    ) -> None:
        self._config = config
        self._admin = admin
        self._store = store
        self._timeline = timeline
        self._rng = rng
        self.issues: dict[int, IssueState] = {}
        self.sent: list[SentDelivery] = []
        self.unacknowledged = 0
        """Webhooks `aw serve` did not answer with 2xx (each is redelivered)."""
        self.operator_redeliveries = 0
        self.errors: list[str] = []
        self._failed: list[tuple[float, SentDelivery]] = []

    # -- running ---------------------------------------------------------------------------

    async def create_issues(self) -> None:
        """Open every issue (no trigger yet); the steering mix comes from the seeded RNG."""
        for i in range(self._config.issues):
            steer: list[str] = []
            if self._rng.random() < self._config.block_fraction:
                steer.append("block plan")
            if self._rng.random() < self._config.error_fraction:
                steer.append("error deliver")
            noise = self._rng.random() < self._config.noise_fraction
            state = IssueState(0, tuple(steer), noise, self._round_steps())
            number = await self._admin.create_issue(
                REPO, f"Chaos task {i + 1}", body=state.body, author=USER
            )
            state.number = number
            self.issues[number] = state

    def _round_steps(self) -> tuple[str, ...]:
        """The seeded rounds of one PR: a review and/or failing checks, maybe one more of
        either, maybe reviews past the revise limit."""
        config, rng = self._config, self._rng
        steps: list[str] = []
        if rng.random() < config.review_fraction:
            steps.append(REVIEW)
        if rng.random() < config.checks_fraction:
            steps.append(f"{CHECKS}:1")
        if steps and rng.random() < config.more_rounds_fraction:
            # On a repair round's commit, case 1 again is the same failure: the loop breaker.
            steps.append(rng.choice((REVIEW, f"{CHECKS}:1", f"{CHECKS}:2")))
        if REVIEW in steps and rng.random() < config.over_limit_fraction:
            steps += [REVIEW] * (config.max_revise_rounds + 1 - steps.count(REVIEW))
        return tuple(steps)

    async def run(self, deadline: float) -> None:
        """Start issues one by one (`issue_interval_s` apart) and drive them until all are done."""
        starter = asyncio.create_task(self._start_all(), name="chaos-issue-starter")
        try:
            while time.monotonic() < deadline:
                views = await self._snapshot()
                for state in self.issues.values():
                    if state.labelled and state.done_at is None:
                        await self._step(state, views.get(state.number))
                await self._redeliver_failed()
                if starter.done() and self.all_done:
                    break
                await asyncio.sleep(POLL_S)
        finally:
            starter.cancel()
            await asyncio.gather(starter, return_exceptions=True)

    @property
    def all_done(self) -> bool:
        """True when every issue's summary was posted (compound complete, effects done)."""
        return all(s.done_at is not None for s in self.issues.values())

    async def _start_all(self) -> None:
        for state in self.issues.values():
            state.started_at = time.monotonic()
            for _ in range(LABEL_ATTEMPTS):
                if await self._act(
                    state,
                    f"{USER} adds label 'agent'",
                    self._admin.add_label(REPO, state.number, "agent", user=USER),
                ):
                    break
            state.labelled = True
            if state.noise:
                await self._act(
                    state,
                    f"{USER} comments /approve before the plan",
                    self._admin.comment(REPO, state.number, "/approve", user=USER),
                )
                await self._act(
                    state,
                    f"{STRANGER} (read-only) comments /approve",
                    self._admin.comment(REPO, state.number, "/approve", user=STRANGER),
                )
            await asyncio.sleep(self._config.issue_interval_s)

    # -- one issue ---------------------------------------------------------------------------

    async def _step(self, state: IssueState, view: TaskView | None) -> None:
        if view is None:
            return  # the label's webhook is not routed yet
        phases = view.phases
        compound = phases.get("compound")
        if compound is not None and compound.status == "complete" and compound.effects_done:
            state.done_at = time.monotonic()
            self._timeline.add(f"#{state.number}: done")
            return
        latest = next(((p, phases[p]) for p in LATEST_FIRST if p in phases), None)
        if latest is not None:
            name, run = latest
            if run.settled and run.status in ("blocked", "failed"):
                if (name, run.attempt) not in state.retried:
                    state.retried.add((name, run.attempt))
                    await self._act(
                        state,
                        f"{USER} comments /retry ({name} {run.status}, attempt {run.attempt})",
                        self._admin.comment(REPO, state.number, "/retry", user=USER),
                    )
                return
        plan = phases.get("plan")
        if (
            plan is not None
            and plan.status == "complete"
            and plan.effects_done
            and "deliver" not in phases
            and not state.approved
        ):
            state.approved = True
            await self._act(
                state,
                f"{USER} comments /approve",
                self._admin.comment(REPO, state.number, "/approve", user=USER),
            )
        deliver = phases.get("deliver")
        if (
            deliver is not None
            and deliver.status == "complete"
            and deliver.effects_done
            and "compound" not in phases
            and not state.merged
            and view.pr_number is not None
        ):
            if not await self._rounds_over(state, view, view.pr_number):
                return
            state.merged = True
            ok = await self._act(
                state,
                f"{USER} merges PR #{view.pr_number}",
                self._admin.merge_pull(REPO, view.pr_number, user=USER),
            )
            state.merged = ok is not None

    async def _rounds_over(self, state: IssueState, view: TaskView, pr: int) -> bool:
        """Send the PR's next round step once the last one is routed and settled; True when
        every step is done (then the PR may be merged)."""
        if state.waiting:
            if not await self._routed(state.waiting) or not view.settled:
                return False
            state.waiting = ()
        if not view.settled:
            return False
        if state.rounds_sent >= len(state.rounds):
            return True
        step = state.rounds[state.rounds_sent]
        if step == REVIEW:
            call: Awaitable[_Acted] = self._admin.submit_review(
                REPO,
                pr,
                user=USER,
                state="changes_requested",
                body="Two things before this goes in.",
                comments=REVIEW_COMMENTS,
            )
            what = f"{USER} requests changes on PR #{pr} (2 line comments)"
        else:
            head = view.head_sha
            if not head:
                self.errors.append(f"#{state.number}: no head commit recorded for {step}")
                state.rounds_sent += 1
                return False
            # The scripted agent pushes nothing: the branch moves as its push would have.
            await self._admin.push(REPO, f"agent/issue-{state.number}", user=BOT, sha=head)
            case = step.partition(":")[2]
            call = self._admin.complete_checks(REPO, head, [_failing_check(case)])
            what = f"checks fail on {head[:7]} (PR #{pr}, case {case})"
        acted = await self._act(state, what, call)
        if acted is not None:
            state.rounds_sent += 1
            state.waiting = tuple(d.id for d in acted.deliveries if d.event in ROUND_TRIGGERS)
        return False

    async def _routed(self, ids: tuple[str, ...]) -> bool:
        """True when every one of these deliveries is stored and routed (or dead-lettered)."""
        stmt = select(deliveries.c.delivery_id).where(
            deliveries.c.delivery_id.in_(ids),
            deliveries.c.routed_at.is_not(None) | deliveries.c.dead_at.is_not(None),
        )
        async with self._store.engine.connect() as conn:
            done = {row.delivery_id for row in (await conn.execute(stmt)).all()}
        return done >= set(ids)

    async def _act(self, state: IssueState, what: str, call: Awaitable[_Acted]) -> _Acted | None:
        """Perform one user action; record its webhooks; None if the emulator refused it."""
        try:
            acted = await call
        except Exception as exc:  # the emulator refused (e.g. a race in the harness): retry later
            self.errors.append(f"#{state.number} {what}: {exc}")
            self._timeline.add(f"#{state.number}: action failed: {what}: {exc}")
            return None
        self._timeline.add(f"#{state.number}: {what}")
        for d in acted.deliveries:
            sent = SentDelivery(d.id, d.event, d.action, state.number, what)
            self.sent.append(sent)
            if not _acknowledged(d):
                self.unacknowledged += 1
                self._failed.append((time.monotonic(), sent))
                self._timeline.add(
                    f"#{state.number}: webhook {d.id[:8]} not acknowledged ({d.status_code}, {d.error})"
                )
        return acted

    async def _redeliver_failed(self) -> None:
        keep: list[tuple[float, SentDelivery]] = []
        for since, sent in self._failed:
            if time.monotonic() - since < REDELIVER_AFTER_S:
                keep.append((since, sent))
                continue
            try:
                copies = await self._admin.redeliver(sent.id)
            except Exception as exc:  # the emulator refused: try again next poll
                self.errors.append(f"redeliver {sent.id}: {exc}")
                keep.append((time.monotonic(), sent))
                continue
            self.operator_redeliveries += 1
            self._timeline.add(f"#{sent.issue}: operator redelivers webhook {sent.id[:8]}")
            if not all(_acknowledged(c) for c in copies):
                keep.append((time.monotonic(), sent))
        self._failed = keep

    # -- what the users see -----------------------------------------------------------------

    async def _snapshot(self) -> dict[int, TaskView]:
        stmt = (
            select(
                tasks.c.issue_number,
                tasks.c.pr_number,
                tasks.c.head_sha,
                phase_runs.c.phase,
                phase_runs.c.status,
                phase_runs.c.attempt,
                phase_runs.c.effects_done,
            )
            .select_from(tasks.outerjoin(phase_runs, phase_runs.c.task_id == tasks.c.id))
            .where(tasks.c.repo == REPO)
        )
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        views: dict[int, TaskView] = {}
        for row in rows:
            view = views.setdefault(row.issue_number, TaskView(row.pr_number, {}, row.head_sha))
            if row.phase is not None:
                view.phases[row.phase] = PhaseView(row.status, row.attempt, bool(row.effects_done))
        return views


def _failing_check(case: str) -> dict[str, object]:
    """One failing check run; the same `case` twice is the same failure signature."""
    return {
        "name": "tests",
        "conclusion": "failure",
        "title": "1 test failed",
        "summary": f"test_widget_case_{case} failed",
        "annotations": [
            {
                "path": "tests/test_widget.py",
                "start_line": 10 + int(case),
                "message": f"AssertionError: widget case {case} is too slow",
            }
        ],
    }


def _acknowledged(delivery: DeliveryInfo) -> bool:
    return delivery.status_code is not None and 200 <= delivery.status_code < 300
