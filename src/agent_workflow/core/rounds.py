"""Rounds after the pull request (DESIGN §4.6): review rounds and CI repair rounds.

A round is started by one trigger — a `changes_requested` review, an `/agent …`
comment on the pull request, failing checks on the head commit we pushed — and is
the next attempt of its phase (`revise`, `repair`). Whatever the redeliveries,
duplicate jobs and workers, one trigger opens at most one round (`RoundStore.open`
is one transaction under a unique trigger key), and the round then runs under the
same claim, lease, fence, session and ledger as every phase.

Rounds are bounded: `RoundLimits` per task and phase, after which one comment says
so and nothing more runs; and a repair round whose own commit fails the same way
(same check names and first error lines) blocks the task instead of trying again.
The input a round works from (the review's comments, the failing checks) is read
from GitHub once, when the round opens, and stored with it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog

from agent_workflow.core.effects import Effect, EffectKind, effect_key
from agent_workflow.core.errors import EffectRefused, PhaseBusy
from agent_workflow.core.hooks import LABEL_BLOCKED
from agent_workflow.core.ledger import Ledger, Scope
from agent_workflow.core.model import (
    Event,
    Intent,
    IssueState,
    Phase,
    PhaseRun,
    PhaseStatus,
    RoundTrigger,
    Task,
)
from agent_workflow.core.ports import (
    CheckRun,
    Clock,
    Forge,
    ReviewComment,
    Round,
    RoundOpened,
    RoundWork,
    Store,
)
from agent_workflow.core.recovery import RecoveryPoint, recovery_point
from agent_workflow.core.repo_settings import RepoConfigs, capped
from agent_workflow.core.routed import Action, Routed, ran
from agent_workflow.core.runner import PhaseRunner

log = structlog.get_logger(__name__)

CHECKS_PREFIX = "checks:"
"""The trigger key of failing checks on a commit: `checks:<sha>`."""
# Conclusions that make a commit's checks worth repairing.
FAILING = frozenset({"failure", "timed_out"})


@dataclass(frozen=True)
class RoundLimits:
    """Rounds per task; the values (and why) are in `Settings`."""

    revise: int
    repair: int

    def of(self, phase: Phase) -> int:
        """The limit of `phase` (a round phase)."""
        return self.revise if phase is Phase.REVISE else self.repair

    def narrowed(self, revise: int | None, repair: int | None) -> RoundLimits:
        """These limits lowered by a repository's (None: not lowered); never raised."""
        return RoundLimits(
            revise=capped(revise, self.revise) or 0, repair=capped(repair, self.repair) or 0
        )


def from_checks(event: Event) -> bool:
    """True for failing checks (not a person's command): they count whoever sent them."""
    return (
        event.intent is Intent.REPAIR
        and event.round is not None
        and event.round.key.startswith(CHECKS_PREFIX)
    )


def failure_signature(checks: Sequence[CheckRun]) -> str:
    """What failed, comparable across commits: each failing check's name and the first
    line of its first annotation (else of its summary), sorted."""
    parts = []
    for check in checks:
        detail = check.annotations[0] if check.annotations else (check.summary or check.title)
        first = detail.strip().splitlines()[0] if detail.strip() else ""
        # Annotations start "path:line: message": the line number moves with any edit.
        parts.append(f"{check.name}: {first.split(': ', 1)[-1]}")
    return "\n".join(sorted(parts))


class RoundRouter:
    """Routes REVISE and REPAIR events to rounds (the `Router` delegates to it)."""

    def __init__(
        self,
        store: Store,
        forge: Forge,
        runner: PhaseRunner,
        ledger: Ledger,
        clock: Clock,
        limits: RoundLimits,
        *,
        settle: Callable[[Task, PhaseRun], Awaitable[None]],
        configs: RepoConfigs,
    ) -> None:
        self._store = store
        self._forge = forge
        self._runner = runner
        self._ledger = ledger
        self._clock = clock
        self._limits = limits
        self._settle = settle
        self._configs = configs

    async def route(self, event: Event, state: IssueState | None) -> Routed:
        """Open the round `event` asks for (once) and drive it; or say why not."""
        trigger = event.round
        if trigger is None:
            return Routed(Action.NOOP, "no round trigger in the event")
        if state is None:
            return Routed(Action.NOOP, "no task for this pull request")
        phase = Phase.REVISE if event.intent is Intent.REVISE else Phase.REPAIR
        task, refusal = await self._delivered_task(event, state)
        if task is None:
            return Routed(Action.NOOP, refusal, phase)
        existing = await self._store.rounds.find(task.id, phase, trigger.key)
        if existing is not None:
            return await self._drive(task, existing)
        if await self._round_running(task):
            # Perhaps this trigger's own round, opened a moment ago by a duplicate.
            existing = await self._store.rounds.find(task.id, phase, trigger.key)
            if existing is not None:
                return await self._drive(task, existing)
            # Waiting for the running round costs no GitHub read (its input is read once,
            # when this round can open). Review and repair rounds never overlap: both
            # work on the pull request's branch.
            raise PhaseBusy(f"a round of task {task.id} is not settled yet")
        limits = await self._limits_of(task)
        if await self._store.rounds.count(task.id, phase) >= limits.of(phase):
            # Past the limit no input is worth reading; `_open` says so (or finds this
            # trigger's round, if a concurrent duplicate opened it meanwhile).
            return await self._open(task, phase, RoundWork(trigger), event.delivery_id, limits)
        work = await self._input(task, phase, trigger)
        if phase is Phase.REPAIR and not work.checks:
            return Routed(Action.NOOP, "no failing checks on that commit", phase)
        if from_checks(event) and await self._repeats(task, work):
            return Routed(Action.NOOP, "the same failure came back after a repair", phase)
        return await self._open(task, phase, work, event.delivery_id, limits)

    async def _limits_of(self, task: Task) -> RoundLimits:
        """The deployment's round limits, lowered by the repository's settings (read once
        per round that may open: a duplicate of an opened round never gets here)."""
        repo = (await self._configs.for_repo(task.repo, task.default_branch)).settings
        return self._limits.narrowed(repo.max_revise, repo.max_repair)

    async def _open(
        self, task: Task, phase: Phase, work: RoundWork, delivery: str, limits: RoundLimits
    ) -> Routed:
        """Open the round (one transaction) and drive it; at the limit, say so once."""
        key = work.trigger.key
        opened = await self._store.rounds.open(
            task.id, phase, work, delivery, limits.of(phase), self._clock()
        )
        # Opened, or found: also when busy or at the limit, if it was this very trigger's
        # round that a concurrent duplicate (a check run and its suite) opened meanwhile.
        found = await self._store.rounds.find(task.id, phase, key)
        if found is None:
            if opened is RoundOpened.LIMIT:
                await self._say_limit(task, phase, limits.of(phase))
                return Routed(Action.NOOP, f"{phase} round limit reached", phase)
            if opened is RoundOpened.BUSY:
                raise PhaseBusy(f"the current {phase} round is not settled yet")
            raise AssertionError(f"round {key} of task {task.id} vanished")  # pragma: no cover
        if opened is RoundOpened.OPENED:
            log.info("round.opened", task=task.id, phase=phase, attempt=found.attempt)
        return await self._drive(task, found)

    async def _delivered_task(self, event: Event, state: IssueState) -> tuple[Task | None, str]:
        """The task if its pull request is open and is the event's; else why not."""
        task = state.task
        deliver = state.runs.get(Phase.DELIVER)
        if deliver is None or deliver.status is not PhaseStatus.COMPLETE:
            return None, "deliver phase not complete"
        if Phase.COMPOUND in state.runs:
            return None, "the pull request was merged"
        await self._settle(task, deliver)  # the PR (and its number) exist before any round
        if task.pr_number is None:
            task = await self._store.tasks.get(task.id) or task
        if task.pr_number is None:  # pragma: no cover - a settled deliver opened it
            return None, "no pull request"
        if event.pr_number is not None and event.pr_number != task.pr_number:
            return None, f"PR #{event.pr_number} is not the task's pull request"
        if from_checks(event) and event.round is not None and event.round.head_sha != task.head_sha:
            if await self._round_running(task):
                # The running round may have pushed this very commit and not recorded it.
                raise PhaseBusy(f"a round of task {task.id} is not settled yet")
            # A commit a person pushed (or an older one of ours) is left alone.
            return None, "checks of a commit that is not our head"
        return task, ""

    async def _round_running(self, task: Task) -> bool:
        """True while a revise or repair attempt of the task is not settled."""
        for phase in (Phase.REVISE, Phase.REPAIR):
            run = await self._store.phases.get(task.id, phase)
            if run is not None and recovery_point(run, self._clock()) is not RecoveryPoint.SETTLED:
                return True
        return False

    async def _drive(self, task: Task, found: Round) -> Routed:
        run = await self._store.phases.get(task.id, found.phase)
        if run is None or run.attempt != found.attempt:
            return Routed(Action.NOOP, f"{found.phase} round {found.number} is over", found.phase)
        return ran(found.phase, await self._runner.execute(task, found.phase, known=run))

    async def _input(self, task: Task, phase: Phase, trigger: RoundTrigger) -> RoundWork:
        """What the round works from, read from GitHub once (G6: only what it needs)."""
        assert task.pr_number is not None
        if phase is Phase.REVISE:
            comments: tuple[ReviewComment, ...] = ()
            if trigger.review_id is not None and trigger.key.startswith("review:"):
                found = await self._forge.review_comments(
                    task.repo, task.pr_number, trigger.review_id
                )
                comments = tuple(found)
            return RoundWork(trigger, comments=comments, start_sha=task.head_sha or "")
        sha = trigger.head_sha or task.head_sha or ""
        checks = tuple(
            c for c in await self._forge.check_runs(task.repo, sha) if c.conclusion in FAILING
        )
        return RoundWork(
            trigger,
            checks=checks,
            signature=failure_signature(checks),
            start_sha=task.head_sha or "",
        )

    async def _repeats(self, task: Task, work: RoundWork) -> bool:
        """True (and the task blocked, once) when a repair round pushed this commit and its
        checks fail just as the ones that round was repairing."""
        previous = await self._store.rounds.pushed_by(task.id, Phase.REPAIR, work.trigger.head_sha)
        if previous is None or previous.work.signature != work.signature:
            return False
        body = (
            "**agent-blocked**: the checks failed again the same way after CI repair round "
            f"{previous.number}, so no further repair round will run. A person should take "
            "a look; `/agent fix ci` asks for another try."
        )
        await self._say(task, Phase.REPAIR, previous.attempt, "repeat-failure", body)
        return True

    async def _say_limit(self, task: Task, phase: Phase, limit: int) -> None:
        what = "review" if phase is Phase.REVISE else "CI repair"
        body = (
            f"**agent-blocked**: this pull request has had {limit} {what} rounds, the most "
            "allowed, so the agent will not start another one. A person should take over."
        )
        await self._say(task, phase, 0, "round-limit", body)

    async def _say(self, task: Task, phase: Phase, attempt: int, name: str, body: str) -> None:
        """One comment on the pull request and the `agent-blocked` label, exactly once."""
        assert task.pr_number is not None
        scope = Scope(task.id, phase.value, attempt, None)
        key = effect_key(task.effect_repo, task.issue_number, phase, attempt, name)
        effects = (
            Effect(key, EffectKind.COMMENT, task.repo, task.pr_number, body=body),
            Effect(
                f"{key}-label",
                EffectKind.ADD_LABELS,
                task.repo,
                task.issue_number,
                labels=(LABEL_BLOCKED,),
            ),
        )
        rows = await self._ledger.begin(effects, scope)
        with contextlib.suppress(EffectRefused):  # a locked PR: the logs keep it
            for effect in effects:
                await self._ledger.perform(effect, scope, rows.get(effect.key))
