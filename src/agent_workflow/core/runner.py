"""Phase execution (DESIGN §4 steps 3–4): claim, run the agent under a heartbeat, record, hook.

Every entry reads the run's recovery point (`core.recovery`) and acts on it:

  claimable               → claim (fence+1) → run or resume the agent → record → hooks
  held elsewhere          → a live holder runs the agent: return, no side effects (G2)
  effects outstanding     → claim the effects → run the hooks (only what is outstanding)
  effects held elsewhere  → a live holder performs them: return
  settled                 → nothing to do

Before an agent starts, the deployment's limits apply (`core.limits`): past the daily
budget a claimable phase is not claimed (it waits, pending, for the sweeper after the
day rolls over), and the agent runs only inside a slot leased in the database.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TypeVar

import structlog

from agent_workflow.core.effects import Effect, EffectKind, effect_key
from agent_workflow.core.errors import EffectRefused, ForgeError, LeaseLost
from agent_workflow.core.hooks import (
    REFUSED_PREFIX,
    HookContext,
    correlation_id,
    progress_ending,
    run_hooks,
)
from agent_workflow.core.lease import LeaseWatch, watching
from agent_workflow.core.ledger import Ledger, Scope
from agent_workflow.core.limits import AgentLimits, SlotRequest, budget_reached, holding, take_slot
from agent_workflow.core.model import Guard, Phase, PhaseRun, PhaseStatus, Task
from agent_workflow.core.neutralise import neutralise
from agent_workflow.core.ports import (
    Agent,
    AgentRequest,
    AgentResult,
    Clock,
    Outcome,
    Round,
    Store,
)
from agent_workflow.core.progress import Reporter, reporting
from agent_workflow.core.recovery import RecoveryPoint, recovery_point
from agent_workflow.core.repo_settings import (
    CONFIG_PATH,
    PhaseLimits,
    RepoConfig,
    RepoConfigs,
    allowed_domains,
    capped,
    invalid_comment,
    phase_limits,
)
from agent_workflow.core.telemetry import NO_TELEMETRY, Telemetry
from agent_workflow.core.text import clean_text

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
    """Lease and failure policy; the values (and why they are what they are) are in `Settings`."""

    owner: str
    lease_s: float  # how long a claim lives without a heartbeat
    heartbeat_s: float  # how often the holder extends it
    max_failures: int  # agent errors before the attempt is marked failed
    task_budget_usd: float | None  # cap on one task's spending across attempts (None: none)
    progress_interval_s: float | None  # live progress: at most one edit per this (None: off)
    pr_draft: bool  # open the delivered pull request as a draft
    limits: AgentLimits  # agents at once and the daily budget, across every worker
    # The deployment's caps that a repository's settings may only narrow: per phase run
    # (a phase absent: no cap), and the domains sandboxed commands may reach.
    phase_limits: Mapping[Phase, PhaseLimits]
    allowed_domains: tuple[str, ...]


class Executed(StrEnum):
    """How a call of `PhaseRunner.execute` left the phase."""

    SETTLED = "settled"  # final with every effect done (this call may have finished it)
    HELD_ELSEWHERE = "held_elsewhere"  # a live lease elsewhere holds the agent or the effects
    LEASE_LOST = "lease_lost"  # this worker lost its lease midway; the new holder goes on
    NOT_STARTED = "not_started"  # the phase has no run
    WAITING = "waiting"  # the daily budget is spent: left pending, unclaimed, for the sweeper


@dataclass(frozen=True)
class Execution:
    """The typed outcome of `execute`: what happened, and the phase's status as last seen."""

    result: Executed
    status: PhaseStatus | None = None


class PhaseRunner:
    """Executes one phase of one task to its next durable state."""

    def __init__(
        self,
        store: Store,
        agent: Agent,
        ledger: Ledger,
        settings: RunnerSettings,
        clock: Clock,
        configs: RepoConfigs,
        telemetry: Telemetry = NO_TELEMETRY,
    ) -> None:
        self._store = store
        self._telemetry = telemetry
        self._agent = agent
        self._ledger = ledger
        self._settings = settings
        self._clock = clock
        self._configs = configs

    async def execute(
        self,
        task: Task,
        phase: Phase,
        *,
        known: PhaseRun | None = None,
        trigger: str | None = None,
    ) -> Execution:
        """Drive the phase forward from its recovery point; say how it was left.

        `known` is the run as the caller just read it (saves a read); `trigger` the
        delivery that starts a phase with no run yet (created claimed, in one statement).
        """
        phases = self._store.phases
        s = self._settings
        run = known
        if run is None and trigger is not None:
            started = await self._start(task, phase, trigger)
            if started is not None:
                return started
        # A pass returns, or re-reads after losing a claim race to another worker (who
        # then holds the run, so the next pass returns); many passes are a bug, not a wait.
        for _ in range(2 * (s.max_failures + 2)):
            if run is None:
                run = await phases.get(task.id, phase)
                if run is None:
                    return Execution(Executed.NOT_STARTED)
            now = self._clock()
            match recovery_point(run, now):
                case RecoveryPoint.CLAIMABLE:
                    done = await self._claim(task, run, now)
                    if done is None:
                        run = None  # lost the race: re-read and see who has it
                        continue
                    return done
                case RecoveryPoint.EFFECTS_OUTSTANDING:
                    claimed = await phases.claim_effects(task.id, phase, s.owner, s.lease_s, now)
                    if claimed is None:
                        run = None
                        continue
                    span = self._telemetry.phase_span(task.id, phase, claimed.attempt, "effects")
                    with span as note:
                        done = await self._perform_effects(task, claimed)
                        note(done.status or done.result)
                    return done
                case RecoveryPoint.HELD_ELSEWHERE | RecoveryPoint.EFFECTS_HELD_ELSEWHERE:
                    return Execution(Executed.HELD_ELSEWHERE, run.status)
                case RecoveryPoint.SETTLED:
                    return Execution(Executed.SETTLED, run.status)
                case point:  # pragma: no cover - a new point without a branch is a loud bug
                    raise AssertionError(f"no action for recovery point {point!r}")
        raise AssertionError(f"phase {phase} of task {task.id} made no progress")

    async def _claim(self, task: Task, run: PhaseRun, now: float) -> Execution | None:
        """Claim a claimable run and run it; None when another worker claimed it first.
        While the daily budget is spent nothing is claimed: the run waits as it is."""
        if await self._over_budget(task, run.phase):
            return Execution(Executed.WAITING, run.status)
        s = self._settings
        claimed = await self._store.phases.claim(task.id, run.phase, s.owner, s.lease_s, now)
        return None if claimed is None else await self._run_claimed(task, claimed)

    async def _start(self, task: Task, phase: Phase, trigger: str) -> Execution | None:
        """A phase with no run yet: created claimed and run (one statement), or created
        pending while the daily budget is spent; None when it exists already."""
        s = self._settings
        phases = self._store.phases
        if await self._over_budget(task, phase):
            await phases.ensure(task.id, phase, trigger, self._clock())
            return Execution(Executed.WAITING, PhaseStatus.PENDING)
        claimed = await phases.start(task.id, phase, trigger, s.owner, s.lease_s, self._clock())
        return None if claimed is None else await self._run_claimed(task, claimed)

    async def _run_claimed(self, task: Task, claimed: PhaseRun) -> Execution:
        """Run the agent under the claim; a final result goes on to its effects. The
        repository's settings are read once here, for the run and its effects."""
        span = self._telemetry.phase_span(task.id, claimed.phase, claimed.attempt, "run")
        with span as note:
            done = await self._run_then_perform(task, claimed)
            note(done.status or done.result)
        return done

    async def _run_then_perform(self, task: Task, claimed: PhaseRun) -> Execution:
        reporter = self._reporter(task, claimed)
        try:
            config = await self._repo_config(task, claimed)
            run = await self._run_agent(task, claimed, reporter, config)
        except LeaseLost:
            log.warning("phase.lease_lost", task=task.id, phase=claimed.phase, fence=claimed.fence)
            self._telemetry.lease_lost(claimed.phase, "agent")
            return Execution(Executed.LEASE_LOST, PhaseStatus.ACTIVE)
        if run.status.is_final:
            return await self._perform_effects(task, run, reporter, config)
        if await self._held(task):
            # Its installation was suspended or removed meanwhile (the likely cause of the
            # error): no new attempt until it is back; the release makes the run claimable.
            log.info("phase.held", task=task.id, phase=run.phase, attempt=run.attempt)
            return Execution(Executed.WAITING, run.status)
        # The agent errored and the run is pending again (the store turns it `failed` at
        # `max_failures`, so this recursion is bounded): claim it anew, resuming the session.
        return await self.execute(task, run.phase, known=run)

    async def _held(self, task: Task) -> bool:
        """Whether the task is held now (`Task.held_reason`: its installation is away)."""
        now = await self._store.tasks.get(task.id)
        return now is not None and now.held_reason is not None

    # -- the repository's settings ----------------------------------------------

    async def _repo_config(self, task: Task, run: PhaseRun) -> RepoConfig:
        """The repository's settings for this run; an invalid file is said once per file
        version on the issue (a keyed effect), and the deployment's values apply."""
        config = await self._configs.for_repo(task.repo, task.default_branch)  # a read
        if config.error:
            log.warning("repo_config.invalid", repo=task.repo, version=config.version)
            await self._under_lease(
                run.guard, _lease_until(run), self._say_invalid(task, run, config)
            )
        return config

    async def _say_invalid(self, task: Task, run: PhaseRun, config: RepoConfig) -> None:
        name = f"repo-config-invalid-{config.version or 'unknown'}"
        # Keyed by the file's version, not the phase: one comment per issue and version.
        key = effect_key(task.effect_repo, task.issue_number, "config", 0, name)
        body = invalid_comment(CONFIG_PATH, task.default_branch, neutralise(config.error))
        effect = Effect(key, EffectKind.COMMENT, task.repo, task.issue_number, body=body)
        scope = Scope(task.id, run.phase.value, run.attempt, run.guard)
        try:
            await self._ledger.perform(effect, scope)
        except (EffectRefused, ForgeError):  # the run goes on; the logs keep it
            log.exception("repo_config.comment_failed", task=task.id)

    # -- the limits --------------------------------------------------------------

    async def _over_budget(self, task: Task, phase: Phase) -> bool:
        """True (logged) when the daily budget is spent: no agent may start today."""
        limits = self._settings.limits
        reached = await budget_reached(self._store.usage, limits.daily_budget_usd, self._clock())
        if reached is None:
            return False
        log.info(
            "phase.waiting_for_budget",
            task=task.id,
            phase=phase,
            spent_usd=round(reached.spent_usd, 4),
            budget_usd=reached.budget_usd,
            resumes_at=reached.resumes_at,
        )
        return True

    async def _slot(self, task: Task, run: PhaseRun) -> tuple[int, PhaseRun]:
        """A slot for the agent run, and `run` with the lease as it stands afterwards.

        A slot free at once costs one statement. Otherwise the wait goes on under the
        phase lease (heartbeat), and the lease is renewed once more at its end so the
        agent starts with a fresh one; `LeaseLost` if it went meanwhile.
        """
        s = self._settings
        want = SlotRequest(task.repo, s.owner, run.id, s.lease_s, s.heartbeat_s)
        slots = self._store.slots
        slot = await take_slot(slots, s.limits, want, self._clock, wait=False)
        if slot is not None:
            return slot, run
        log.info("agent.waiting_for_slot", task=task.id, phase=run.phase, repo=task.repo)
        waited = take_slot(slots, s.limits, want, self._clock, wait=True)
        slot = await self._under_lease(run.guard, _lease_until(run), waited)
        assert slot is not None  # waiting returns only with a slot
        now = self._clock()
        if not await self._store.phases.heartbeat(run.guard, s.lease_s, now):
            await slots.release(slot, now)
            raise LeaseLost(f"phase run {run.id}: fence {run.fence} is stale")
        return slot, replace(run, lease_until=now + s.lease_s)

    # -- the agent ---------------------------------------------------------------

    async def _run_agent(
        self, task: Task, run: PhaseRun, reporter: Reporter | None, config: RepoConfig
    ) -> PhaseRun:
        """Run or resume the agent under `run`'s fence, in an agent slot; record the
        result fenced. The slot is held from just before the agent's audit row
        (`agent_runs.started_at`) until the result is recorded.

        Returns the row as recorded; raises `LeaseLost` when the fence went stale.
        """
        slot, run = await self._slot(task, run)
        s = self._settings
        want = SlotRequest(task.repo, s.owner, run.id, s.lease_s, s.heartbeat_s)
        async with holding(self._store.slots, slot, want, self._clock):
            return await self._run_agent_in_slot(task, run, reporter, config)

    async def _run_agent_in_slot(
        self, task: Task, run: PhaseRun, reporter: Reporter | None, config: RepoConfig
    ) -> PhaseRun:
        s = self._settings
        phases = self._store.phases
        session_id = session_id_for(task.id, run.phase, run.attempt)
        resume = run.session_started
        agent_run_id = await phases.start_agent(
            run.guard,
            session_id=session_id,
            mode="resume" if resume else "fresh",
            owner=s.owner,
            now=self._clock(),
        )
        self._telemetry.agent_started(run.phase, "resume" if resume else "fresh")
        started_at = self._clock()
        log.info(
            "agent.start",
            task=task.id,
            phase=run.phase,
            attempt=run.attempt,
            fence=run.fence,
            session=session_id,
            resume=resume,
        )
        round_ = await self._round(task, run)
        request = self._request(task, run, session_id, resume, round_, config)
        result = await self._under_lease(
            run.guard, _lease_until(run), self._attempt(request, reporter)
        )
        if not result.session_id:
            result = replace(result, session_id=session_id)
        finished = await phases.finish(
            run.guard,
            agent_run_id,
            _status_of(result.outcome),
            result,
            max_failures=s.max_failures,
            effects_lease_s=s.lease_s,
            now=self._clock(),
        )
        self._telemetry.attempt_finished(run.phase, finished.status, self._clock() - started_at)
        return finished

    async def _attempt(self, request: AgentRequest, reporter: Reporter | None) -> AgentResult:
        """The agent's run, with its progress comment posted and edited beside it."""
        if reporter is None:
            return await self._run_safely(request)
        reporter.open()  # its tasks copy this task's context: they see the lease
        ran = False
        try:
            with reporting(reporter.report):
                result = await self._run_safely(request)
            ran = True
            return result
        finally:
            await reporter.close(wait=ran)

    def _reporter(self, task: Task, run: PhaseRun) -> Reporter | None:
        interval = self._settings.progress_interval_s
        if interval is None:
            return None
        phases, guard = self._store.phases, run.guard

        async def keep(text: str) -> bool:
            return await phases.record_progress(guard, text, self._clock())

        return Reporter(self._ledger, self._clock, interval, task, run, keep)

    async def _run_safely(self, request: AgentRequest) -> AgentResult:
        """An agent that raises is an agent error, not a crashed worker."""
        try:
            return await self._agent.run(request)
        except Exception as exc:
            log.exception("agent.crashed", task=request.task_id, phase=request.phase)
            return AgentResult(Outcome.ERROR, reason=f"agent crashed: {exc!r}")

    async def _round(self, task: Task, run: PhaseRun) -> Round | None:
        """The round this attempt runs (revise, repair), else None."""
        if not run.phase.is_round:
            return None
        found = await self._store.rounds.get(task.id, run.phase, run.attempt)
        if found is None:  # pragma: no cover - a round phase's attempt is opened with its round
            raise AssertionError(
                f"{run.phase} attempt {run.attempt} of task {task.id} has no round"
            )
        return found

    def _request(
        self,
        task: Task,
        run: PhaseRun,
        session_id: str,
        resume: bool,
        round_: Round | None,
        config: RepoConfig,
    ) -> AgentRequest:
        plan = run.plan_text if run.phase is not Phase.PLAN else ""
        s, repo = self._settings, config.settings
        budget = capped(repo.task_budget_usd, s.task_budget_usd)
        budget_left = None if budget is None else max(0.0, budget - run.task_cost_usd)
        limits = phase_limits(repo, s.phase_limits, run.phase)
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
            round=None if round_ is None else round_.work,
            max_turns=limits.max_turns,
            max_budget_usd=limits.max_budget_usd,
            model=repo.model,
            allowed_domains=allowed_domains(repo, s.allowed_domains),
        )

    # -- the effects -------------------------------------------------------------

    async def _perform_effects(
        self,
        task: Task,
        run: PhaseRun,
        reporter: Reporter | None = None,
        config: RepoConfig | None = None,
    ) -> Execution:
        """Run the hooks of a finished run under its fence, then mark the effects done.

        `reporter`: the progress comment of the agent's run in this process (None: a dead
        worker's effects; its comment is found in the ledger for the last edit)."""
        scope = Scope(task.id, run.phase.value, run.attempt, run.guard)
        reporter = reporter or self._reporter(task, run)
        opened: list[int] = []

        async def set_pr_number(number: int) -> None:
            opened.append(number)
            await self._store.tasks.set_pr_number(task.id, number, self._clock())

        async def record_push(sha: str) -> None:
            await self._store.rounds.record_push(
                task.id, run.phase, run.attempt, sha, run.guard, self._clock()
            )

        if run.status is not PhaseStatus.COMPLETE:
            log.warning(
                "phase.blocked",
                task=task.id,
                phase=run.phase,
                status=run.status,
                correlation=correlation_id(run),
                reason=run.blocked_reason,
            )
        ctx = HookContext(
            task,
            run,
            self._ledger,
            scope,
            set_pr_number,
            record_push=record_push,
            round=await self._round(task, run),
            pr_draft=await self._draft(task, run, config),
        )
        try:
            try:
                await self._under_lease(run.guard, _lease_until(run), run_hooks(ctx))
            except EffectRefused as exc:
                run = await self._refused(ctx, exc)
            if reporter is not None:
                ending = progress_ending(run, ctx.round, opened[-1] if opened else task.pr_number)
                await self._last_edit(run, reporter, ending)
            await self._store.phases.effects_finished(run.guard, self._clock())
        except LeaseLost:
            log.warning("effects.lease_lost", task=task.id, phase=run.phase, fence=run.fence)
            self._telemetry.lease_lost(run.phase, "effects")
            return Execution(Executed.LEASE_LOST, run.status)
        return Execution(Executed.SETTLED, run.status)

    async def _draft(self, task: Task, run: PhaseRun, config: RepoConfig | None) -> bool:
        """Whether the delivered pull request opens as a draft: the repository's choice,
        else the deployment's. Read here only for a completed deliver whose agent ran
        elsewhere (a dead worker's effects): the settings as they are now."""
        if config is None:
            if run.phase is not Phase.DELIVER or run.status is not PhaseStatus.COMPLETE:
                return self._settings.pr_draft
            config = await self._configs.for_repo(task.repo, task.default_branch)
        draft = config.settings.draft
        return self._settings.pr_draft if draft is None else draft

    async def _last_edit(self, run: PhaseRun, reporter: Reporter, ending: str) -> None:
        """The progress comment's last edit, after the effects, fenced in the database
        first (once per attempt: cheap) and by the lease while it is sent."""
        s = self._settings
        beat_at = self._clock()
        if not await self._store.phases.heartbeat(run.guard, s.lease_s, beat_at):
            raise LeaseLost(f"phase run {run.id}: fence {run.fence} is stale")
        await self._under_lease(run.guard, beat_at + s.lease_s, reporter.finish(run, ending))

    async def _refused(self, ctx: HookContext, exc: EffectRefused) -> PhaseRun:
        """GitHub refused an effect for good: a completed run becomes `failed` and its
        failure hook runs once; a refused failure hook (the issue takes no comments) is
        given up. Either way the phase settles: nothing refused is ever sent again.
        """
        run = ctx.run
        await self._abandon(ctx)
        log.warning(
            "effects.refused",
            task=ctx.task.id,
            phase=run.phase,
            status=exc.status,
            correlation=correlation_id(run),
            error=str(exc),
        )
        if run.status is not PhaseStatus.COMPLETE:
            return run  # its failure hook was refused: settle without it
        reason = f"{REFUSED_PREFIX} ({exc.status} {exc.reason_class}): {exc}"
        failed = await self._store.phases.refused(run.guard, reason, self._clock())
        failure = replace(ctx, run=failed, _rows={})
        try:
            await self._under_lease(failed.guard, _lease_until(failed), run_hooks(failure))
        except EffectRefused as again:
            await self._abandon(failure)
            log.warning("effects.refused", correlation=correlation_id(failed), error=str(again))
        return failed

    async def _abandon(self, ctx: HookContext) -> None:
        """The effects a refusal kept from being sent are given up (`refused`), not left
        `started` as if their requests might have gone out: they never will."""
        for key in ctx.unperformed():
            await self._store.effects.mark_refused(key, ctx.scope.guard, self._clock())

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


def _status_of(outcome: Outcome) -> PhaseStatus:
    """The phase status an agent outcome records (an error: pending, to be tried again)."""
    match outcome:
        case Outcome.SUCCESS:
            return PhaseStatus.COMPLETE
        case Outcome.BLOCKED:
            return PhaseStatus.BLOCKED
        case Outcome.ERROR:
            return PhaseStatus.PENDING
        case _:  # pragma: no cover
            raise AssertionError(f"unknown agent outcome {outcome!r}")
