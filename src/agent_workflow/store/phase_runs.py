"""Phase runs: every transition is one conditional statement (compare-and-set).

Zero rows changed means "someone else has it, or it is done": the caller returns
without side effects. Writes after a claim carry `AND fence = ?` (G5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_workflow.core.model import Guard, Phase, PhaseRun, PhaseStatus
from agent_workflow.errors import LeaseLost
from agent_workflow.store.schema import agent_runs, phase_runs, tasks
from agent_workflow.store.sql import insert_ignore

FINAL = (PhaseStatus.COMPLETE, PhaseStatus.BLOCKED, PhaseStatus.FAILED)
c = phase_runs.c


@dataclass(frozen=True)
class RecordedResult:
    """What a finished agent run recorded (fenced)."""

    status: PhaseStatus
    text: str = ""
    reason: str = ""
    artifacts: dict[str, str] | None = None
    cost_usd: float = 0.0
    turns: int = 0
    duration_s: float = 0.0
    restarted: bool = False
    terminal_reason: str = ""


class PhaseRuns:
    """SQL for `phase_runs` and its audit trail `agent_runs`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # -- reads -----------------------------------------------------------------

    async def get(self, task_id: int, phase: Phase) -> PhaseRun | None:
        """The run of this phase, or None."""
        stmt = select(phase_runs).where(c.task_id == task_id, c.phase == phase.value)
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt)).mappings().first()
        return _run(row) if row else None

    async def for_task(self, task_id: int) -> list[PhaseRun]:
        """All phase runs of a task, by id."""
        stmt = select(phase_runs).where(c.task_id == task_id).order_by(c.id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [_run(r) for r in rows]

    async def for_issue(self, repo: str, issue_number: int) -> dict[Phase, PhaseRun]:
        """The phase runs of an issue's task, by phase, in one query (the router's fast path)."""
        stmt = (
            select(phase_runs)
            .join(tasks, tasks.c.id == c.task_id)
            .where(tasks.c.repo == repo, tasks.c.issue_number == issue_number)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return {Phase(r["phase"]): _run(r) for r in rows}

    async def needing_work(
        self, now: float, pending_grace_s: float, limit: int = 100
    ) -> list[PhaseRun]:
        """Runs the sweeper must re-dispatch (DESIGN §4.5).

        Active with an expired lease (its holder died); pending for longer than
        the grace period (its dispatcher died before claiming); final with
        effects outstanding and no live lease.
        """
        expired = or_(c.lease_until.is_(None), c.lease_until < now)
        stmt = (
            select(phase_runs)
            .where(
                or_(
                    and_(c.status == PhaseStatus.ACTIVE.value, expired),
                    and_(
                        c.status == PhaseStatus.PENDING.value, c.updated_at < now - pending_grace_s
                    ),
                    and_(
                        c.status.in_([s.value for s in FINAL]), c.effects_done.is_(False), expired
                    ),
                )
            )
            .order_by(c.updated_at)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [_run(r) for r in rows]

    # -- transitions -----------------------------------------------------------

    async def ensure(self, task_id: int, phase: Phase, trigger: str, now: float) -> PhaseRun:
        """Create the phase as pending (attempt 1) if absent; never resets an existing run."""
        stmt = insert_ignore(
            self._engine,
            phase_runs,
            task_id=task_id,
            phase=phase.value,
            status=PhaseStatus.PENDING.value,
            attempt=1,
            fence=0,
            trigger_delivery=trigger,
            effects_done=False,
            created_at=now,
            updated_at=now,
        )
        async with self._engine.begin() as conn:
            await conn.execute(stmt)
            row = (
                (
                    await conn.execute(
                        select(phase_runs).where(c.task_id == task_id, c.phase == phase.value)
                    )
                )
                .mappings()
                .one()
            )
        return _run(row)

    async def claim(self, run_id: int, owner: str, lease_s: float, now: float) -> PhaseRun | None:
        """Take a pending run, or an active one whose lease expired (a takeover)."""
        stmt = (
            update(phase_runs)
            .where(
                c.id == run_id,
                or_(
                    c.status == PhaseStatus.PENDING.value,
                    and_(c.status == PhaseStatus.ACTIVE.value, c.lease_until < now),
                ),
            )
            .values(
                status=PhaseStatus.ACTIVE.value,
                fence=c.fence + 1,
                lease_owner=owner,
                lease_until=now + lease_s,
                updated_at=now,
            )
            .returning(*phase_runs.c)
        )
        return await self._returning(stmt)

    async def claim_effects(
        self, run_id: int, owner: str, lease_s: float, now: float
    ) -> PhaseRun | None:
        """Take a finished run whose effects are outstanding and whose lease is free."""
        stmt = (
            update(phase_runs)
            .where(
                c.id == run_id,
                c.status.in_([s.value for s in FINAL]),
                c.effects_done.is_(False),
                or_(c.lease_until.is_(None), c.lease_until < now),
            )
            .values(fence=c.fence + 1, lease_owner=owner, lease_until=now + lease_s, updated_at=now)
            .returning(*phase_runs.c)
        )
        return await self._returning(stmt)

    async def heartbeat(self, guard: Guard, lease_s: float, now: float) -> bool:
        """Extend the lease. False means it was lost (another worker has a newer fence)."""
        stmt = (
            update(phase_runs)
            .where(c.id == guard.run_id, c.fence == guard.fence)
            .values(lease_until=now + lease_s)
        )
        async with self._engine.begin() as conn:
            return (await conn.execute(stmt)).rowcount == 1

    async def start_agent(
        self, guard: Guard, *, session_id: str, mode: str, owner: str, now: float
    ) -> int:
        """Record, fenced, that the agent starts (fresh or resume); returns the audit row id."""
        async with self._engine.begin() as conn:
            changed = await conn.execute(
                update(phase_runs)
                .where(c.id == guard.run_id, c.fence == guard.fence)
                .values(started_attempt=c.attempt, session_id=session_id, updated_at=now)
                .returning(c.attempt)
            )
            attempt = changed.scalar()
            if attempt is None:
                raise LeaseLost(f"phase run {guard.run_id}: fence {guard.fence} is stale")
            result = await conn.execute(
                insert(agent_runs)
                .values(
                    phase_run_id=guard.run_id,
                    attempt=attempt,
                    fence=guard.fence,
                    session_id=session_id,
                    mode=mode,
                    owner=owner,
                    started_at=now,
                )
                .returning(agent_runs.c.id)
            )
            return int(result.scalar_one())

    async def finish(
        self,
        guard: Guard,
        agent_run_id: int,
        outcome: RecordedResult,
        *,
        effects_lease_s: float,
        now: float,
    ) -> None:
        """Record the agent's result, fenced; the holder keeps the lease for the effects."""
        values: dict[str, Any] = {
            "status": outcome.status.value,
            "result_text": outcome.text,
            "blocked_reason": outcome.reason or None,
            "artifacts": outcome.artifacts or {},
            "cost_usd": c.cost_usd + outcome.cost_usd,
            "turns": c.turns + outcome.turns,
            "duration_s": c.duration_s + outcome.duration_s,
            "lease_until": now + effects_lease_s,
            "effects_done": False,
            "updated_at": now,
            "finished_at": now,
        }
        await self._fenced_with_audit(guard, agent_run_id, outcome, values)

    async def release_after_error(
        self,
        guard: Guard,
        agent_run_id: int,
        outcome: RecordedResult,
        *,
        max_failures: int,
        effects_lease_s: float,
        now: float,
    ) -> PhaseStatus:
        """The agent errored: back to pending for another try, or failed after too many.

        One fenced statement decides which, from the stored failure count.
        """
        gives_up = c.failures + 1 >= max_failures
        values: dict[str, Any] = {
            "status": case((gives_up, PhaseStatus.FAILED.value), else_=PhaseStatus.PENDING.value),
            "failures": c.failures + 1,
            "blocked_reason": outcome.reason or "agent error",
            "cost_usd": c.cost_usd + outcome.cost_usd,
            "turns": c.turns + outcome.turns,
            "duration_s": c.duration_s + outcome.duration_s,
            # Failed keeps the lease for its effects; pending frees it for the next claim.
            "lease_until": case((gives_up, now + effects_lease_s), else_=None),
            "effects_done": False,
            "updated_at": now,
            "finished_at": case((gives_up, now), else_=None),
        }
        return await self._fenced_with_audit(guard, agent_run_id, outcome, values)

    async def effects_finished(self, guard: Guard, now: float) -> None:
        """All effects of the finished run are done: release the lease."""
        stmt = (
            update(phase_runs)
            .where(c.id == guard.run_id, c.fence == guard.fence)
            .values(effects_done=True, lease_owner=None, lease_until=None, updated_at=now)
        )
        async with self._engine.begin() as conn:
            if (await conn.execute(stmt)).rowcount != 1:
                raise LeaseLost(f"phase run {guard.run_id}: fence {guard.fence} is stale")

    async def release(self, guard: Guard, now: float) -> bool:
        """Give the lease up early (graceful shutdown): the next claim takes over at once.

        The status stays as it is, so an active run is resumed (same session) by whoever
        claims it next, and a finished run's outstanding effects are picked up.
        """
        stmt = (
            update(phase_runs)
            .where(c.id == guard.run_id, c.fence == guard.fence)
            .values(lease_until=now - 1.0, updated_at=now)
        )
        async with self._engine.begin() as conn:
            return (await conn.execute(stmt)).rowcount == 1

    async def retry(self, run_id: int, seen_attempt: int, trigger: str, now: float) -> bool:
        """Start a new attempt of a blocked/failed run whose effects are done."""
        stmt = (
            update(phase_runs)
            .where(
                c.id == run_id,
                c.attempt == seen_attempt,
                c.status.in_([PhaseStatus.BLOCKED.value, PhaseStatus.FAILED.value]),
                c.effects_done.is_(True),
            )
            .values(
                status=PhaseStatus.PENDING.value,
                attempt=c.attempt + 1,
                failures=0,
                trigger_delivery=trigger,
                result_text=None,
                blocked_reason=None,
                lease_owner=None,
                lease_until=None,
                effects_done=False,
                updated_at=now,
                finished_at=None,
            )
        )
        async with self._engine.begin() as conn:
            return (await conn.execute(stmt)).rowcount == 1

    async def total_cost(self, task_id: int) -> float:
        """What the task's agent runs have cost so far, across phases and attempts."""
        async with self._engine.connect() as conn:
            costs = (await conn.execute(select(c.cost_usd).where(c.task_id == task_id))).scalars()
            return float(sum(costs))

    # -- helpers ---------------------------------------------------------------

    async def _returning(self, stmt: Any) -> PhaseRun | None:
        async with self._engine.begin() as conn:
            row = (await conn.execute(stmt)).mappings().first()
        return _run(row) if row else None

    async def _fenced_with_audit(
        self, guard: Guard, agent_run_id: int, outcome: RecordedResult, values: dict[str, Any]
    ) -> PhaseStatus:
        async with self._engine.begin() as conn:
            changed = await conn.execute(
                update(phase_runs)
                .where(c.id == guard.run_id, c.fence == guard.fence, c.status == "active")
                .values(**values)
                .returning(c.status)
            )
            status = changed.scalar()
            if status is None:
                raise LeaseLost(f"phase run {guard.run_id}: fence {guard.fence} is stale")
            await conn.execute(
                update(agent_runs)
                .where(agent_runs.c.id == agent_run_id)
                .values(
                    outcome=outcome.status.value,
                    restarted=outcome.restarted,
                    cost_usd=outcome.cost_usd,
                    turns=outcome.turns,
                    duration_s=outcome.duration_s,
                    terminal_reason=outcome.terminal_reason or outcome.reason or None,
                )
            )
        return PhaseStatus(status)


def _run(row: Any) -> PhaseRun:
    return PhaseRun(
        id=row["id"],
        task_id=row["task_id"],
        phase=Phase(row["phase"]),
        status=PhaseStatus(row["status"]),
        attempt=row["attempt"],
        fence=row["fence"],
        lease_owner=row["lease_owner"],
        lease_until=row["lease_until"],
        session_id=row["session_id"],
        trigger_delivery=row["trigger_delivery"],
        failures=row["failures"],
        effects_done=bool(row["effects_done"]),
        result_text=row["result_text"],
        blocked_reason=row["blocked_reason"],
        artifacts=dict(row["artifacts"] or {}),
        cost_usd=row["cost_usd"],
        turns=row["turns"],
        started_attempt=row["started_attempt"],
    )
