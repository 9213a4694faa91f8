"""The router (DESIGN §4 step 2): from an event to the phase its task's durable state calls for.

The phase to run always comes from the task's state, never from the event alone:
an `/approve` before the plan is complete runs nothing; a duplicate or re-delivered
event finds the phase already claimed, complete, or re-entered at its recovery point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog

from agent_workflow.core.effects import HINT_PREFIX, Effect, EffectKind, effect_key
from agent_workflow.core.ledger import Ledger, Scope
from agent_workflow.core.model import Event, Intent, Phase, PhaseStatus, Task, TaskInfo
from agent_workflow.core.runner import PhaseRunner
from agent_workflow.core.trust import Trust, is_bot
from agent_workflow.errors import PhaseBusy
from agent_workflow.store.db import Store

log = structlog.get_logger(__name__)

RETRY_ORDER = (Phase.COMPOUND, Phase.DELIVER, Phase.PLAN)
# The phase an event would run; a retry has no fixed one (it starts a new attempt).
_TARGET = {
    Intent.START_PLAN: Phase.PLAN,
    Intent.APPROVE: Phase.DELIVER,
    Intent.MERGED: Phase.COMPOUND,
}


@dataclass(frozen=True)
class Routed:
    """What routing did, for logs and tests."""

    action: str  # ran | ignored | noop
    reason: str = ""
    phase: Phase | None = None
    status: PhaseStatus | None = None


class Router:
    """Routes parsed events to phase executions."""

    def __init__(
        self,
        store: Store,
        runner: PhaseRunner,
        ledger: Ledger,
        trust: Trust,
        clock: Callable[[], float],
        *,
        own_login: str = "",
    ) -> None:
        self._store = store
        self._runner = runner
        self._ledger = ledger
        self._trust = trust
        self._clock = clock
        self._own_login = own_login

    async def route(self, event: Event) -> Routed:
        """Handle one event; safe to call any number of times with the same event."""
        if is_bot(event.actor, event.actor_is_bot, self._own_login):
            return Routed("ignored", "bot actor")
        # Merging already requires write access; everything else is checked.
        if event.intent is not Intent.MERGED and not await self._trust.allows(
            event.repo, event.actor
        ):
            log.info("route.untrusted", repo=event.repo, actor=event.actor, intent=event.intent)
            return Routed("ignored", f"{event.actor} lacks write permission")
        settled = await self._settled(event)
        if settled is not None:
            return settled
        match event.intent:
            case Intent.START_PLAN:
                task = await self._store.tasks.ensure(_info(event), self._clock())
                return await self._start(task, Phase.PLAN, event)
            case Intent.APPROVE:
                return await self._approve(event)
            case Intent.MERGED:
                return await self._merged(event)
            case Intent.RETRY:
                return await self._retry(event)
            case _:  # pragma: no cover - a new intent without a branch is a loud bug
                raise AssertionError(f"unknown intent {event.intent!r}")

    async def _settled(self, event: Event) -> Routed | None:
        """One read answers the common duplicate: the phase this event would run is done
        (effects included) or held under a live lease. None: take the full path."""
        phase = _TARGET.get(event.intent)
        if phase is None:
            return None
        run = (await self._store.phases.for_issue(event.repo, event.issue_number)).get(phase)
        if run is None:
            return None
        live = run.lease_until is not None and run.lease_until >= self._clock()
        if (run.status.is_final and run.effects_done) or (
            run.status is PhaseStatus.ACTIVE and live
        ):
            return Routed("noop", f"{phase} is already {run.status}", phase, run.status)
        return None

    async def resume(self, task_id: int, phase: Phase) -> Routed:
        """Drive a phase forward from its recovery point (the sweeper's entry)."""
        task = await self._store.tasks.get(task_id)
        if task is None:
            return Routed("noop", "no such task")
        return Routed("ran", phase=phase, status=await self._runner.execute(task, phase))

    async def _start(self, task: Task, phase: Phase, event: Event) -> Routed:
        await self._store.phases.ensure(task.id, phase, event.delivery_id, self._clock())
        status = await self._runner.execute(task, phase)
        return Routed("ran", phase=phase, status=status)

    async def _approve(self, event: Event) -> Routed:
        task = await self._store.tasks.find(event.repo, event.issue_number)
        if task is None:
            return Routed("noop", "no task for this issue")
        plan = await self._store.phases.get(task.id, Phase.PLAN)
        if plan is None:
            return Routed("noop", "no plan yet")
        if plan.status is not PhaseStatus.COMPLETE:
            await self._approve_too_early(task, plan.attempt)
            return Routed("noop", "plan not complete")
        return await self._start(task, Phase.DELIVER, event)

    async def _approve_too_early(self, task: Task, plan_attempt: int) -> None:
        """Say once per plan attempt that approval must wait for the plan."""
        name = f"{HINT_PREFIX}approve-too-early"
        key = effect_key(task.repo, task.issue_number, Phase.PLAN, plan_attempt, name)
        body = "The plan is not ready yet; comment `/approve` again once it has been posted."
        effect = Effect(key, EffectKind.COMMENT, task.repo, task.issue_number, body=body)
        await self._ledger.perform(effect, Scope(task.id, Phase.PLAN.value, plan_attempt, None))

    async def _merged(self, event: Event) -> Routed:
        task = await self._store.tasks.find(event.repo, event.issue_number)
        if task is None:
            return Routed("noop", "merged PR belongs to no task")
        deliver = await self._store.phases.get(task.id, Phase.DELIVER)
        if deliver is None or deliver.status is not PhaseStatus.COMPLETE:
            return Routed("noop", "deliver phase not complete")
        if task.pr_number is not None and event.pr_number not in (None, task.pr_number):
            return Routed("noop", f"PR #{event.pr_number} is not the delivered one")
        return await self._start(task, Phase.COMPOUND, event)

    async def _retry(self, event: Event) -> Routed:
        """A new attempt of the latest phase, if it is blocked or failed."""
        task = await self._store.tasks.find(event.repo, event.issue_number)
        if task is None:
            return Routed("noop", "no task for this issue")
        for phase in RETRY_ORDER:
            run = await self._store.phases.get(task.id, phase)
            if run is None:
                continue
            if run.trigger_delivery == event.delivery_id:
                # This very event already started the attempt: just drive it on.
                return Routed("ran", phase=phase, status=await self._runner.execute(task, phase))
            if not run.status.is_final or run.status is PhaseStatus.COMPLETE:
                return Routed("noop", f"{phase} is {run.status}: nothing to retry")
            # Finish the blocked attempt's own effects before starting the next one.
            await self._runner.execute(task, phase)
            run = await self._store.phases.get(task.id, phase)
            if run is not None and await self._store.phases.retry(
                run.id, run.attempt, event.delivery_id, self._clock()
            ):
                log.info("phase.retry", task=task.id, phase=phase, attempt=run.attempt + 1)
            elif run is not None and run.status.is_final and not run.effects_done:
                raise PhaseBusy(f"{phase} effects are being performed elsewhere; retry later")
            return Routed("ran", phase=phase, status=await self._runner.execute(task, phase))
        return Routed("noop", "nothing to retry")


def _info(event: Event) -> TaskInfo:
    return TaskInfo(
        repo=event.repo,
        issue_number=event.issue_number,
        title=event.title,
        body=event.body,
        clone_url=event.clone_url,
        default_branch=event.default_branch,
    )
