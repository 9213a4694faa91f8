"""Phase execution (DESIGN §4 steps 3–4): claim, run the agent under a heartbeat, record, hook.

Recovery points of one (task, phase), read from durable state on every entry:

  pending / active with an expired lease → claim (fence+1) → run or resume the agent
  active under a live lease              → someone else holds it: return, no side effects
  complete / blocked / failed, effects outstanding → claim the effects → run the hooks
  complete / blocked / failed, effects done        → nothing to do
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog

from agent_workflow.agents.protocol import Agent, AgentRequest, AgentResult, Outcome
from agent_workflow.core.hooks import HookContext, run_hooks
from agent_workflow.core.ledger import Ledger, Scope
from agent_workflow.core.model import Guard, Phase, PhaseRun, PhaseStatus, Task
from agent_workflow.core.text import clean_text
from agent_workflow.errors import LeaseLost
from agent_workflow.lease import LeaseWatch, watching
from agent_workflow.store.db import Store
from agent_workflow.store.phase_runs import RecordedResult

log = structlog.get_logger(__name__)
T = TypeVar("T")

# Session ids are UUIDs derived from (task, phase, attempt): the same attempt always
# resumes the same session, a new attempt gets a new one (G2).
SESSION_NAMESPACE = uuid.UUID("6f1c1d2e-8a55-4d6b-9a0e-7c7f3b1e2a90")


def session_id_for(task_id: int, phase: Phase, attempt: int) -> str:
    """The deterministic agent session id of one phase attempt."""
    return str(uuid.uuid5(SESSION_NAMESPACE, f"{task_id}:{phase.value}:{attempt}"))


@dataclass(frozen=True)
class RunnerSettings:
    """Lease and failure policy. Each number says why it is what it is."""

    owner: str
    # How long a claim lives without a heartbeat: the time a dead worker's phase waits
    # before another may take it over.
    lease_s: float = 60.0
    # Heartbeat often enough that two missed beats still leave the lease alive.
    heartbeat_s: float = 20.0
    # Agent errors before the attempt is marked failed (each retry resumes the session).
    max_failures: int = 3
    # Cap on what one task may spend across all attempts and resumes (None: no cap).
    task_budget_usd: float | None = None


class PhaseRunner:
    """Executes one phase of one task to its next durable state."""

    def __init__(
        self,
        store: Store,
        agent: Agent,
        ledger: Ledger,
        settings: RunnerSettings,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._agent = agent
        self._ledger = ledger
        self._settings = settings
        self._clock = clock

    async def execute(self, task: Task, phase: Phase) -> PhaseStatus | None:
        """Drive the phase forward from whatever state it is in; return where it stands."""
        phases = self._store.phases
        s = self._settings
        for _ in range(s.max_failures + 2):
            run = await phases.get(task.id, phase)
            if run is None:
                return None
            now = self._clock()
            lease_live = run.lease_until is not None and run.lease_until >= now
            if run.status is PhaseStatus.PENDING or (
                run.status is PhaseStatus.ACTIVE and not lease_live
            ):
                claimed = await phases.claim(run.id, s.owner, s.lease_s, now)
                if claimed is None:
                    continue  # lost the race: re-read and see who has it
                finished = await self._run_agent(task, claimed)
                if finished is None:
                    return None  # lease lost: a newer holder owns the phase now
                if finished.status is PhaseStatus.PENDING:
                    continue  # the agent errored; try again (resuming the session)
                await self._perform_effects(task, finished)
                return finished.status
            if run.status is PhaseStatus.ACTIVE:
                return PhaseStatus.ACTIVE  # a live holder is running it (G2)
            if run.effects_done:
                return run.status
            claimed = await phases.claim_effects(run.id, s.owner, s.lease_s, now)
            if claimed is None:
                return run.status  # another worker is performing the effects
            await self._perform_effects(task, claimed)
            return claimed.status
        return None

    # -- the agent ---------------------------------------------------------------

    async def _run_agent(self, task: Task, run: PhaseRun) -> PhaseRun | None:
        """Run or resume the agent under `run`'s fence; record the result fenced."""
        s = self._settings
        phases = self._store.phases
        session_id = session_id_for(task.id, run.phase, run.attempt)
        resume = run.session_started
        try:
            request = await self._request(task, run, session_id, resume)
            agent_run_id = await phases.start_agent(
                run.guard,
                session_id=session_id,
                mode="resume" if resume else "fresh",
                owner=s.owner,
                now=self._clock(),
            )
            log.info(
                "agent.start",
                task=task.id,
                phase=run.phase,
                attempt=run.attempt,
                fence=run.fence,
                session=session_id,
                resume=resume,
            )
            result = await self._under_lease(
                run.guard, _lease_until(run), self._run_safely(request)
            )
            recorded = _recorded(result)
            now = self._clock()
            if recorded.status is PhaseStatus.PENDING:
                await phases.release_after_error(
                    run.guard,
                    agent_run_id,
                    recorded,
                    max_failures=s.max_failures,
                    effects_lease_s=s.lease_s,
                    now=now,
                )
            else:
                await phases.finish(
                    run.guard, agent_run_id, recorded, effects_lease_s=s.lease_s, now=now
                )
        except LeaseLost:
            log.warning("phase.lease_lost", task=task.id, phase=run.phase, fence=run.fence)
            return None
        return await phases.get(task.id, run.phase)

    async def _run_safely(self, request: AgentRequest) -> AgentResult:
        """An agent that raises is an agent error, not a crashed worker."""
        try:
            return await self._agent.run(request)
        except Exception as exc:
            log.exception("agent.crashed", task=request.task_id, phase=request.phase)
            return AgentResult(Outcome.ERROR, reason=f"agent crashed: {exc!r}")

    async def _request(
        self, task: Task, run: PhaseRun, session_id: str, resume: bool
    ) -> AgentRequest:
        plan = ""
        if run.phase in (Phase.DELIVER, Phase.COMPOUND):
            plan_run = await self._store.phases.get(task.id, Phase.PLAN)
            plan = plan_run.result_text or "" if plan_run else ""
        budget_left = None
        if self._settings.task_budget_usd is not None:
            spent = await self._store.phases.total_cost(task.id)
            budget_left = max(0.0, self._settings.task_budget_usd - spent)
        return AgentRequest(
            task_id=task.id,
            repo=task.repo,
            issue_number=task.issue_number,
            phase=run.phase,
            attempt=run.attempt,
            session_id=session_id,
            resume=resume,
            title=clean_text(task.title),
            body=clean_text(task.body),
            clone_url=task.clone_url,
            default_branch=task.default_branch,
            branch=task.branch,
            plan=plan,
            pr_number=task.pr_number,
            budget_left_usd=budget_left,
        )

    # -- the effects -------------------------------------------------------------

    async def _perform_effects(self, task: Task, run: PhaseRun) -> None:
        """Run the hooks of a finished run under its fence, then mark the effects done."""
        scope = Scope(task.id, run.phase.value, run.attempt, run.guard)

        async def set_pr_number(number: int) -> None:
            await self._store.tasks.set_pr_number(task.id, number, self._clock())

        current = await self._store.tasks.get(task.id) or task
        ctx = HookContext(current, run, self._ledger, scope, set_pr_number)
        try:
            await self._under_lease(run.guard, _lease_until(run), run_hooks(ctx))
            await self._store.phases.effects_finished(run.guard, self._clock())
        except LeaseLost:
            log.warning("effects.lease_lost", task=task.id, phase=run.phase, fence=run.fence)

    # -- the lease ---------------------------------------------------------------

    async def _under_lease(self, guard: Guard, lease_until: float, work: Awaitable[T]) -> T:
        """Await `work` while heartbeating; cancel it and raise `LeaseLost` if the lease goes.

        Cancelled from outside (graceful shutdown), it releases the lease so another
        worker can take the phase over at once instead of waiting for the expiry.
        """
        s = self._settings
        watch = LeaseWatch(lease_until, self._clock, margin_s=s.lease_s / 4)
        with watching(watch):  # the work's task sees it; mutations check it before sending
            job = asyncio.ensure_future(work)
        beat = asyncio.create_task(self._heartbeat(guard, watch))
        try:
            done, _ = await asyncio.wait({job, beat}, return_when=asyncio.FIRST_COMPLETED)
            if job in done:
                return job.result()
            job.cancel()
            await asyncio.gather(job, return_exceptions=True)
            raise LeaseLost(f"phase run {guard.run_id}: lease lost while working")
        except asyncio.CancelledError:
            job.cancel()
            await asyncio.gather(job, return_exceptions=True)
            await asyncio.shield(self._store.phases.release(guard, self._clock()))
            log.info("phase.lease_released", run=guard.run_id, fence=guard.fence)
            raise
        finally:
            beat.cancel()
            job.cancel()
            await asyncio.gather(beat, return_exceptions=True)

    async def _heartbeat(self, guard: Guard, watch: LeaseWatch) -> None:
        """Extend the lease until it is refused (another fence) or cannot be renewed in time."""
        s = self._settings
        while True:
            await asyncio.sleep(s.heartbeat_s)
            beat_at = self._clock()
            try:
                if not await self._store.phases.heartbeat(guard, s.lease_s, beat_at):
                    return
                watch.confirm(beat_at + s.lease_s)
            except Exception:  # a database blip: keep trying while the lease still holds
                log.exception("phase.heartbeat_failed", run=guard.run_id)
                if self._clock() >= watch.confirmed_until:
                    return


def _lease_until(run: PhaseRun) -> float:
    return run.lease_until if run.lease_until is not None else 0.0


def _recorded(result: AgentResult) -> RecordedResult:
    status = {
        Outcome.SUCCESS: PhaseStatus.COMPLETE,
        Outcome.BLOCKED: PhaseStatus.BLOCKED,
        Outcome.ERROR: PhaseStatus.PENDING,
    }[result.outcome]
    return RecordedResult(
        status=status,
        text=result.text,
        reason=result.reason,
        artifacts=dict(result.artifacts),
        cost_usd=result.cost_usd,
        turns=result.turns,
        duration_s=result.duration_s,
        restarted=result.restarted,
        terminal_reason=result.terminal_reason,
    )
