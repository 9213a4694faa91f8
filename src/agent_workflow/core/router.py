"""The router (DESIGN §4 step 2): from an event to the phase its task's durable state calls for.

The phase to run always comes from the task's state, never from the event alone:
an `/approve` before the plan is complete runs nothing; a duplicate or re-delivered
event finds the phase already claimed, complete, or re-entered at its recovery point.
"""

from __future__ import annotations

import contextlib
from enum import Enum
from typing import Literal

import structlog

from agent_workflow.core.effects import HINT_PREFIX, Effect, EffectKind, effect_key
from agent_workflow.core.errors import EffectRefused, PhaseBusy
from agent_workflow.core.ledger import Ledger, Scope
from agent_workflow.core.model import (
    Event,
    Intent,
    IssueState,
    Phase,
    PhaseRun,
    PhaseStatus,
    Task,
    TaskInfo,
)
from agent_workflow.core.ports import Clock, Forge, Store
from agent_workflow.core.recovery import RecoveryPoint, recovery_point
from agent_workflow.core.repo_settings import RepoConfigs
from agent_workflow.core.rounds import RoundLimits, RoundRouter, from_checks
from agent_workflow.core.routed import Action, Routed, ran
from agent_workflow.core.runner import Executed, PhaseRunner
from agent_workflow.core.trust import Trust, is_bot

log = structlog.get_logger(__name__)

RETRY_ORDER = (Phase.COMPOUND, Phase.DELIVER, Phase.PLAN)
# The phase an event would run; a retry has no fixed one (it starts a new attempt).
_TARGET = {
    Intent.START_PLAN: Phase.PLAN,
    Intent.APPROVE: Phase.DELIVER,
    Intent.MERGED: Phase.COMPOUND,
}


class Unread(Enum):
    """The caller did not read the issue's state with the event (the router reads it)."""

    UNREAD = "unread"


UNREAD = Unread.UNREAD


class Router:
    """Routes parsed events to phase executions."""

    def __init__(
        self,
        store: Store,
        runner: PhaseRunner,
        ledger: Ledger,
        trust: Trust,
        clock: Clock,
        *,
        own_login: str,
        forge: Forge,
        round_limits: RoundLimits,
        configs: RepoConfigs,
    ) -> None:
        self._store = store
        self._runner = runner
        self._ledger = ledger
        self._trust = trust
        self._clock = clock
        self._own_login = own_login
        self._rounds = RoundRouter(
            store, forge, runner, ledger, clock, round_limits, settle=self._settle, configs=configs
        )

    async def route(
        self, event: Event, state: IssueState | Literal[Unread.UNREAD] | None = UNREAD
    ) -> Routed:
        """Handle one event; safe to call any number of times with the same event.

        `state` is the issue's task and phases if the caller read them together with
        the event (one round trip for a duplicate); otherwise the router reads them.
        A state read a moment ago is safe to decide from: settled stays settled, a
        busy phase's event is a duplicate, and every action is a conditional write.
        """
        refused = await self._refused(event)
        if refused is not None:
            return refused
        # One read answers most events: the task and all its phases.
        if state is UNREAD or (state is None and not event.issue_number):
            state = await self._state(event)
        state = await self._current(event, state)
        if state is not None and state.task.held_reason is not None:
            return Routed(Action.IGNORED, state.task.held_reason)
        settled = self._settled(event, state)
        if settled is not None:
            return settled
        match event.intent:
            case Intent.START_PLAN:
                if state is None:
                    task = await self._store.tasks.ensure(_info(event), self._clock())
                    task = await self._moved(event, task)  # created under an older name
                    return await self._run(task, Phase.PLAN, None, event)
                return await self._run(state.task, Phase.PLAN, state.runs.get(Phase.PLAN), event)
            case Intent.APPROVE:
                return await self._approve(event, state)
            case Intent.MERGED:
                return await self._merged(event, state)
            case Intent.RETRY:
                return await self._retry(event, state)
            case Intent.REVISE | Intent.REPAIR:
                return await self._rounds.route(event, state)
            case _:  # pragma: no cover - a new intent without a branch is a loud bug
                raise AssertionError(f"unknown intent {event.intent!r}")

    async def _refused(self, event: Event) -> Routed | None:
        """Why this event is ignored before the issue is read, or None.

        A merge counts whoever merged: merging takes write access, a merge queue
        (`github-merge-queue[bot]`) or our own bot may do it, and `_merged` accepts only
        the task's own pull request. Failing checks count whoever sent them (GitHub sends
        them as the app or the pusher, usually us): `rounds` accepts only the head we
        pushed. Every other event of a bot or an untrusted actor is ignored.
        """
        if event.installation_id is not None:
            # Before anything that asks GitHub: a suspended installation's token is refused.
            held = await self._store.installations.held(event.installation_id)
            if held is not None:
                log.info("route.installation_held", repo=event.repo, reason=held)
                return Routed(Action.IGNORED, held)
        if event.intent is not Intent.MERGED and not from_checks(event):
            if is_bot(event.actor, event.actor_is_bot, self._own_login):
                return Routed(Action.IGNORED, "bot actor")
            if not await self._trust.allows(event.repo, event.actor):
                log.info("route.untrusted", repo=event.repo, actor=event.actor, intent=event.intent)
                return Routed(Action.IGNORED, f"{event.actor} lacks write permission")
        return None

    async def _state(self, event: Event) -> IssueState | None:
        """The issue's state; a comment on a pull request names only the PR."""
        repo, number = event.repo, event.issue_number
        if not number and event.pr_number is not None:
            task = await self._store.tasks.by_pull_request(repo, event.pr_number, event.repo_id)
            if task is None:
                return None
            number = task.issue_number
        return await self._store.phases.for_issue(repo, number, event.repo_id)

    async def _current(self, event: Event, state: IssueState | None) -> IssueState | None:
        """The state with its task under its repository's current name (see `_moved`)."""
        if state is None:
            return None
        task = await self._moved(event, state.task)
        return IssueState(await self._installed(event, task), state.runs)

    async def _installed(self, event: Event, task: Task) -> Task:
        """The task under the installation its latest event came through (one statement,
        only on a change): that installation's token acts for it from now on."""
        if event.installation_id is None or task.installation_id == event.installation_id:
            return task
        log.info(
            "task.installation_changed",
            task=task.id,
            old=task.installation_id,
            new=event.installation_id,
        )
        now = self._clock()
        changed = await self._store.tasks.set_installation(task.id, event.installation_id, now)
        return changed or task

    async def _moved(self, event: Event, task: Task) -> Task:
        """The task under the name its repository has now: an event that names the task's
        repository (by id) otherwise moves it there (one statement, only on a change), so
        every later GitHub call uses the current `owner/name`. Effect keys do not move."""
        if event.repo_id is None or (task.repo, task.repo_id) == (event.repo, event.repo_id):
            return task
        log.info("task.repository_renamed", task=task.id, old=task.repo, new=event.repo)
        moved = await self._store.tasks.renamed(task.id, event.repo, event.repo_id, self._clock())
        return moved or task

    def _settled(self, event: Event, state: IssueState | None) -> Routed | None:
        """The common duplicate: the phase this event would run is settled, or held by a
        live lease elsewhere. None: take the full path."""
        phase = _TARGET.get(event.intent)
        run = state.runs.get(phase) if state is not None and phase is not None else None
        if run is None:
            return None
        point = recovery_point(run, self._clock())
        if point is RecoveryPoint.SETTLED or point.is_busy:
            return Routed(Action.NOOP, f"{phase} is already {run.status}", phase, run.status)
        return None

    async def resume(self, task_id: int, phase: Phase) -> Routed:
        """Drive a phase forward from its recovery point (the sweeper's entry)."""
        task = await self._store.tasks.get(task_id)
        if task is None:
            return Routed(Action.NOOP, "no such task")
        if task.held_reason is not None:  # nothing runs until its installation is back
            return Routed(Action.NOOP, task.held_reason)
        return ran(phase, await self._runner.execute(task, phase))

    async def _run(self, task: Task, phase: Phase, known: PhaseRun | None, event: Event) -> Routed:
        execution = await self._runner.execute(task, phase, known=known, trigger=event.delivery_id)
        return ran(phase, execution)

    async def _settle(self, task: Task, run: PhaseRun) -> None:
        """Finish an earlier phase's outstanding effects before the next phase starts
        (so its labels land before the next phase's). `PhaseBusy` while a live holder
        elsewhere performs them: the event is routed again later."""
        match recovery_point(run, self._clock()):
            case RecoveryPoint.SETTLED:
                return
            case RecoveryPoint.EFFECTS_OUTSTANDING:
                execution = await self._runner.execute(task, run.phase, known=run)
                if execution.result is not Executed.SETTLED:
                    raise PhaseBusy(f"{run.phase} effects could not be finished here; retry later")
            case RecoveryPoint.EFFECTS_HELD_ELSEWHERE:
                raise PhaseBusy(f"{run.phase} effects are being performed elsewhere; retry later")
            case point:  # pragma: no cover - callers pass final runs only
                raise AssertionError(f"{run.phase} at {point} is not final")

    async def _approve(self, event: Event, state: IssueState | None) -> Routed:
        if state is None:
            return Routed(Action.NOOP, "no task for this issue")
        plan = state.runs.get(Phase.PLAN)
        if plan is None:
            return Routed(Action.NOOP, "no plan yet")
        if plan.status is not PhaseStatus.COMPLETE:
            await self._approve_too_early(state.task, plan.attempt)
            return Routed(Action.NOOP, "plan not complete")
        await self._settle(state.task, plan)
        return await self._run(state.task, Phase.DELIVER, state.runs.get(Phase.DELIVER), event)

    async def _approve_too_early(self, task: Task, plan_attempt: int) -> None:
        """Say once per plan attempt that approval must wait for the plan."""
        name = f"{HINT_PREFIX}approve-too-early"
        key = effect_key(task.effect_repo, task.issue_number, Phase.PLAN, plan_attempt, name)
        body = "The plan is not ready yet; comment `/approve` again once it has been posted."
        effect = Effect(key, EffectKind.COMMENT, task.repo, task.issue_number, body=body)
        with contextlib.suppress(EffectRefused):  # a hint the issue refuses is dropped (logged)
            await self._ledger.perform(effect, Scope(task.id, Phase.PLAN.value, plan_attempt, None))

    async def _merged(self, event: Event, state: IssueState | None) -> Routed:
        if state is None:
            return Routed(Action.NOOP, "merged PR belongs to no task")
        task = state.task
        deliver = state.runs.get(Phase.DELIVER)
        if deliver is None or deliver.status is not PhaseStatus.COMPLETE:
            return Routed(Action.NOOP, "deliver phase not complete")
        if task.pr_number is not None and event.pr_number != task.pr_number:
            return Routed(Action.NOOP, f"PR #{event.pr_number} is not the delivered one")
        await self._settle(task, deliver)
        if task.pr_number is None:  # the pull request's effect was outstanding: now it is done
            task = await self._store.tasks.get(task.id) or task
            if event.pr_number != task.pr_number:
                return Routed(Action.NOOP, f"PR #{event.pr_number} is not the delivered one")
        return await self._run(task, Phase.COMPOUND, state.runs.get(Phase.COMPOUND), event)

    async def _retry(self, event: Event, state: IssueState | None) -> Routed:
        """A new attempt of the latest phase, if it is blocked or failed."""
        if state is None:
            return Routed(Action.NOOP, "no task for this issue")
        task = state.task
        for phase in RETRY_ORDER:
            run = state.runs.get(phase)
            if run is None:
                continue
            if run.trigger_delivery == event.delivery_id:
                # This very event already started the attempt: just drive it on.
                return ran(phase, await self._runner.execute(task, phase, known=run))
            if run.status not in (PhaseStatus.BLOCKED, PhaseStatus.FAILED):
                return Routed(Action.NOOP, f"{phase} is {run.status}: nothing to retry")
            # Finish the blocked attempt's own effects before starting the next one.
            await self._settle(task, run)
            if await self._store.phases.retry(
                run.id, run.attempt, event.delivery_id, self._clock()
            ):
                log.info("phase.retry", task=task.id, phase=phase, attempt=run.attempt + 1)
            return ran(phase, await self._runner.execute(task, phase))
        return Routed(Action.NOOP, "nothing to retry")


def _info(event: Event) -> TaskInfo:
    return TaskInfo(
        repo=event.repo,
        issue_number=event.issue_number,
        title=event.title,
        body=event.body,
        clone_url=event.clone_url,
        default_branch=event.default_branch,
        repo_id=event.repo_id,
        installation_id=event.installation_id,
    )
