"""Phase runs: every transition is one conditional statement (compare-and-set).

Zero rows changed means "someone else has it, or it is done": the caller returns
without side effects. Writes after a claim carry `AND fence = ?` (G5).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    Integer,
    String,
    Text,
    and_,
    bindparam,
    case,
    insert,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Dialect

from agent_workflow.core.errors import LeaseLost
from agent_workflow.core.model import Guard, IssueState, Phase, PhaseRun, PhaseStatus
from agent_workflow.core.ports import AgentResult
from agent_workflow.core.recovery import RecoveryPoint
from agent_workflow.core.text import storable
from agent_workflow.store.connections import Database
from agent_workflow.store.model_usage import spent_sql
from agent_workflow.store.schema import agent_runs, phase_runs, tasks
from agent_workflow.store.sql import insert_ignore
from agent_workflow.store.tasks import same_issue, task_from_row

# The live progress text kept with a run: a progress comment's body is about this long.
MAX_PROGRESS_CHARS = 8_000
FINAL = (PhaseStatus.COMPLETE, PhaseStatus.BLOCKED, PhaseStatus.FAILED)
_FINAL_VALUES = [s.value for s in FINAL]
c = phase_runs.c


def point_sql(now: float) -> Any:
    """`core.recovery.recovery_point` in SQL, branch for branch (tested to agree)."""
    free = or_(c.lease_until.is_(None), c.lease_until < now)
    return case(
        (c.status == PhaseStatus.PENDING.value, RecoveryPoint.CLAIMABLE.value),
        (and_(c.status == PhaseStatus.ACTIVE.value, free), RecoveryPoint.CLAIMABLE.value),
        (c.status == PhaseStatus.ACTIVE.value, RecoveryPoint.HELD_ELSEWHERE.value),
        (c.effects_done.is_(True), RecoveryPoint.SETTLED.value),
        (free, RecoveryPoint.EFFECTS_OUTSTANDING.value),
        else_=RecoveryPoint.EFFECTS_HELD_ELSEWHERE.value,
    )


# A claim returns what the agent request needs besides the row: the task's plan and
# what the task has spent, as subqueries of the same statement (no second read).
# (Literal SQL: SQLAlchemy renders RETURNING columns unqualified, subqueries included,
# which would make the correlation ambiguous.)
_PLAN_TEXT = literal_column(
    "(SELECT other.result_text FROM phase_runs AS other"
    " WHERE other.task_id = phase_runs.task_id AND other.phase = 'plan')",
    Text,
).label("plan_text")
_TASK_COST = literal_column(spent_sql("phase_runs.task_id"), Float).label("task_cost_usd")
_SESSION_STARTED = literal_column(
    "EXISTS (SELECT 1 FROM agent_runs WHERE agent_runs.phase_run_id = phase_runs.id"
    " AND agent_runs.attempt = phase_runs.attempt)",
    Boolean,
).label("session_started")
# The session of the current attempt is named by its newest audit row (recorded as the
# agent starts); the column keeps the last finished run's for attempts not started yet.
_SESSION_ID = literal_column(
    "coalesce((SELECT agent_runs.session_id FROM agent_runs"
    " WHERE agent_runs.phase_run_id = phase_runs.id AND agent_runs.attempt = phase_runs.attempt"
    " ORDER BY agent_runs.id DESC LIMIT 1), phase_runs.session_id)",
    String,
).label("session_id")
_ROW = (*(col for col in phase_runs.c if col.name != "session_id"), _SESSION_ID, _SESSION_STARTED)
_TASK_PREFIX = "task__"
_TASK_NAMES = [(f"{_TASK_PREFIX}{col.name}", col.name) for col in tasks.c]
ISSUE_COLUMNS = (
    *(col.label(label) for col, (label, _) in zip(tasks.c, _TASK_NAMES, strict=True)),
    *phase_runs.c,
)
"""An issue's task and phase runs as columns of one row per run (LEFT JOIN tasks → runs)."""
_FOR_ISSUE = (
    select(*ISSUE_COLUMNS)
    .select_from(tasks.outerjoin(phase_runs, tasks.c.id == c.task_id))
    .where(
        same_issue(
            bindparam("repo", type_=String),
            bindparam("repo_id", type_=BigInteger),
            bindparam("issue_number", type_=Integer),
        )
    )
)
_CLAIMED = (*_ROW, _PLAN_TEXT, _TASK_COST)


class PhaseRuns:
    """SQL for `phase_runs` and its audit trail `agent_runs`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- reads -----------------------------------------------------------------

    async def get(self, task_id: int, phase: Phase) -> PhaseRun | None:
        """The run of this phase, or None."""
        stmt = select(*_ROW).where(c.task_id == task_id, c.phase == phase.value)
        async with self._db.connect() as conn:
            row = (await conn.execute(stmt)).mappings().first()
        return _run(row) if row else None

    async def for_task(self, task_id: int) -> list[PhaseRun]:
        """All phase runs of a task, by id."""
        stmt = select(phase_runs).where(c.task_id == task_id).order_by(c.id)
        async with self._db.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [_run(r) for r in rows]

    async def for_issue(
        self, repo: str, issue_number: int, repo_id: int | None = None
    ) -> IssueState | None:
        """The issue's task and its phase runs in one query (the router's fast path);
        by the repository's id when given (see `store.tasks.same_repo`)."""
        rows = await self._db.fetch(
            _FOR_ISSUE, repo=repo, repo_id=repo_id, issue_number=issue_number
        )
        return issue_state(rows)

    async def needing_work(
        self, now: float, pending_grace_s: float, limit: int = 100
    ) -> list[PhaseRun]:
        """Runs the sweeper must re-dispatch (DESIGN §4.5), by their recovery point.

        Claimable (an expired lease: its holder died; or pending for longer than the
        grace period: its dispatcher died before claiming), or effects outstanding.
        """
        point = point_sql(now)
        stmt = (
            select(phase_runs)
            .where(
                or_(
                    and_(
                        point == RecoveryPoint.CLAIMABLE.value,
                        or_(
                            c.status != PhaseStatus.PENDING.value,
                            c.updated_at < now - pending_grace_s,
                        ),
                    ),
                    point == RecoveryPoint.EFFECTS_OUTSTANDING.value,
                ),
                # A held task (its installation suspended or gone) is not retried in a loop.
                c.task_id.not_in(select(tasks.c.id).where(tasks.c.held_reason.is_not(None))),
            )
            .order_by(c.updated_at)
            .limit(limit)
        )
        async with self._db.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [_run(r) for r in rows]

    # -- transitions -----------------------------------------------------------

    async def start(
        self, task_id: int, phase: Phase, trigger: str, owner: str, lease_s: float, now: float
    ) -> PhaseRun | None:
        """Create the phase already claimed by `owner` (fence 1); None if it exists.

        One statement for the common case: a phase started by its first event.
        """
        stmt = insert_new_run(
            self._db.dialect,
            task_id,
            phase,
            trigger,
            now,
            status=PhaseStatus.ACTIVE.value,
            fence=1,
            lease_owner=owner,
            lease_until=now + lease_s,
        ).returning(*_CLAIMED)
        return await self._returning(stmt)

    async def ensure(self, task_id: int, phase: Phase, trigger: str, now: float) -> PhaseRun:
        """Create the phase as pending (attempt 1) if absent; never resets an existing run."""
        stmt = insert_new_run(
            self._db.dialect,
            task_id,
            phase,
            trigger,
            now,
            status=PhaseStatus.PENDING.value,
            fence=0,
        )
        async with self._db.begin() as conn:
            await conn.execute(stmt)
            query = select(phase_runs).where(c.task_id == task_id, c.phase == phase.value)
            row = (await conn.execute(query)).mappings().one()
        return _run(row)

    async def claim(
        self, task_id: int, phase: Phase, owner: str, lease_s: float, now: float
    ) -> PhaseRun | None:
        """Take a claimable run: pending, or active with an expired lease (a takeover)."""
        stmt = (
            update(phase_runs)
            .where(
                c.task_id == task_id,
                c.phase == phase.value,
                point_sql(now) == RecoveryPoint.CLAIMABLE.value,
            )
            .values(
                status=PhaseStatus.ACTIVE.value,
                fence=c.fence + 1,
                lease_owner=owner,
                lease_until=now + lease_s,
                updated_at=now,
            )
            .returning(*_CLAIMED)
        )
        return await self._returning(stmt)

    async def claim_effects(
        self, task_id: int, phase: Phase, owner: str, lease_s: float, now: float
    ) -> PhaseRun | None:
        """Take a finished run whose effects are outstanding and whose lease is free."""
        stmt = (
            update(phase_runs)
            .where(
                c.task_id == task_id,
                c.phase == phase.value,
                point_sql(now) == RecoveryPoint.EFFECTS_OUTSTANDING.value,
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
        async with self._db.begin() as conn:
            return (await conn.execute(stmt)).rowcount == 1

    async def record_progress(self, guard: Guard, text: str, now: float) -> bool:
        """Keep the attempt's live progress text, fenced. False when the lease was lost."""
        stmt = (
            update(phase_runs)
            .where(c.id == guard.run_id, c.fence == guard.fence)
            .values(progress=storable(text[:MAX_PROGRESS_CHARS]), progress_at=now)
        )
        async with self._db.begin() as conn:
            return (await conn.execute(stmt)).rowcount == 1

    async def start_agent(
        self, guard: Guard, *, session_id: str, mode: str, owner: str, now: float
    ) -> int:
        """Record, fenced, that the agent starts (fresh or resume); returns the audit row id.

        One statement: the audit row is inserted only while the fence holds, and it is
        what marks the attempt's session as started (`session_started` on later reads).
        """
        given: dict[str, Any] = {
            "phase_run_id": guard.run_id,
            "fence": guard.fence,
            "session_id": session_id,
            "mode": mode,
            "owner": owner,
            "started_at": now,
        }
        columns: list[Any] = [literal(v, agent_runs.c[k].type) for k, v in given.items()]
        values = [*given, "attempt"]
        source = select(*columns, c.attempt).where(c.id == guard.run_id, c.fence == guard.fence)
        stmt = insert(agent_runs).from_select(values, source).returning(agent_runs.c.id)
        async with self._db.begin() as conn:
            inserted = (await conn.execute(stmt)).scalar()
        if inserted is None:
            raise LeaseLost(f"phase run {guard.run_id}: fence {guard.fence} is stale")
        return int(inserted)

    async def finish(
        self,
        guard: Guard,
        agent_run_id: int,
        status: PhaseStatus,
        result: AgentResult,
        *,
        max_failures: int,
        effects_lease_s: float,
        now: float,
    ) -> PhaseRun:
        """Record how the agent ended, fenced, and return the row as written.

        `status` complete or blocked: the result is recorded and the holder keeps the
        lease for the effects. `status` pending (the agent errored): back to pending for
        another try, or failed once `max_failures` is reached — one statement decides
        which, from the stored failure count.
        """
        spent = {
            "session_id": result.session_id or c.session_id,
            "cost_usd": c.cost_usd + result.cost_usd,
            "turns": c.turns + result.turns,
            "duration_s": c.duration_s + result.duration_s,
            "effects_done": False,
            "updated_at": now,
        }
        values: dict[str, Any]
        if status is PhaseStatus.PENDING:
            gives_up = c.failures + 1 >= max_failures
            values = {
                "status": case(
                    (gives_up, PhaseStatus.FAILED.value), else_=PhaseStatus.PENDING.value
                ),
                "failures": c.failures + 1,
                "blocked_reason": result.reason or "agent error",
                # Failed keeps the lease for its effects; pending frees it for the next claim.
                "lease_until": case((gives_up, now + effects_lease_s), else_=None),
                "finished_at": case((gives_up, now), else_=None),
            }
        else:
            values = {
                "status": status.value,
                "result_text": result.text,
                "blocked_reason": result.reason or None,
                "artifacts": dict(result.artifacts),
                "lease_until": now + effects_lease_s,
                "finished_at": now,
            }
        async with self._db.begin() as conn:
            changed = await conn.execute(
                update(phase_runs)
                .where(
                    c.id == guard.run_id,
                    c.fence == guard.fence,
                    c.status == PhaseStatus.ACTIVE.value,
                )
                .values(**spent, **values)
                .returning(*phase_runs.c)
            )
            row = changed.mappings().first()
            if row is None:
                raise LeaseLost(f"phase run {guard.run_id}: fence {guard.fence} is stale")
            await conn.execute(
                update(agent_runs)
                .where(agent_runs.c.id == agent_run_id)
                .values(
                    outcome=row["status"],
                    restarted=result.restarted,
                    cost_usd=result.cost_usd,
                    turns=result.turns,
                    duration_s=result.duration_s,
                    terminal_reason=result.terminal_reason or result.reason or None,
                )
            )
        return _run(row)

    async def effects_finished(self, guard: Guard, now: float) -> None:
        """All effects of the finished run are done: release the lease."""
        stmt = (
            update(phase_runs)
            .where(c.id == guard.run_id, c.fence == guard.fence)
            .values(effects_done=True, lease_owner=None, lease_until=None, updated_at=now)
        )
        async with self._db.begin() as conn:
            if (await conn.execute(stmt)).rowcount != 1:
                raise LeaseLost(f"phase run {guard.run_id}: fence {guard.fence} is stale")

    async def refused(self, guard: Guard, reason: str, now: float) -> PhaseRun:
        """GitHub refused one of a finished run's effects: the run is `failed` with
        `reason` (one conditional statement, fenced); the failure's effects follow."""
        stmt = (
            update(phase_runs)
            .where(c.id == guard.run_id, c.fence == guard.fence, c.status.in_(_FINAL_VALUES))
            .values(
                status=PhaseStatus.FAILED.value,
                blocked_reason=reason,
                effects_done=False,
                updated_at=now,
            )
            .returning(*phase_runs.c)
        )
        run = await self._returning(stmt)
        if run is None:
            raise LeaseLost(f"phase run {guard.run_id}: fence {guard.fence} is stale")
        return run

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
        async with self._db.begin() as conn:
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
            .values(**next_attempt(trigger, now))
        )
        async with self._db.begin() as conn:
            return (await conn.execute(stmt)).rowcount == 1

    # -- helpers ---------------------------------------------------------------

    async def _returning(self, stmt: Any) -> PhaseRun | None:
        async with self._db.begin() as conn:
            row = (await conn.execute(stmt)).mappings().first()
        return _run(row) if row else None


def insert_new_run(
    dialect: Dialect, task_id: int, phase: Phase, trigger: str, now: float, **state: Any
) -> Any:
    """Insert-if-absent of attempt 1 of a phase; `state` says whether it starts claimed
    (the first event of a phase) or pending (`ensure`, a task's first round)."""
    return insert_ignore(
        dialect,
        phase_runs,
        task_id=task_id,
        phase=phase.value,
        attempt=1,
        trigger_delivery=trigger,
        effects_done=False,
        created_at=now,
        updated_at=now,
        **state,
    )


def next_attempt(trigger: str, now: float) -> dict[str, Any]:
    """The values that make a settled run's next attempt, pending, started by `trigger`
    (a `/retry`, or a new round): the earlier attempt's outcome and lease are cleared."""
    return {
        "status": PhaseStatus.PENDING.value,
        "attempt": c.attempt + 1,
        "failures": 0,
        "trigger_delivery": trigger,
        "result_text": None,
        "blocked_reason": None,
        "artifacts": None,
        "lease_owner": None,
        "lease_until": None,
        "effects_done": False,
        "updated_at": now,
        "finished_at": None,
    }


def issue_state(rows: Sequence[Any]) -> IssueState | None:
    """The `IssueState` in rows of `ISSUE_COLUMNS`; None when they hold no task."""
    if not rows or rows[0][_TASK_NAMES[0][0]] is None:
        return None
    first = rows[0]
    task = task_from_row({name: first[label] for label, name in _TASK_NAMES})
    runs = {Phase(r["phase"]): _run(r) for r in rows if r["id"] is not None}
    return IssueState(task, runs)


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
        session_started=bool(row.get("session_started", False)),
        plan_text=row.get("plan_text") or "",
        task_cost_usd=float(row.get("task_cost_usd") or 0.0),
    )
