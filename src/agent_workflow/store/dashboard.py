"""The dashboard's reads: tasks with their phases, one task's history, and totals.

Read-only and bounded: every list has a limit, so a large deployment costs the same
few statements per page. A task's cost is the one definition the budget uses
(`spent_sql`: the larger of what the proxy metered and what the agents reported).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Float, and_, case, exists, func, literal_column, or_, select

from agent_workflow.core.effects import EffectKind
from agent_workflow.core.model import PhaseStatus
from agent_workflow.store.connections import Database
from agent_workflow.store.model_usage import spent_sql
from agent_workflow.store.schema import agent_runs, deliveries, effects, phase_runs, rounds, tasks
from agent_workflow.store.tasks import same_issue

_TASK_COST = literal_column(spent_sql("tasks.id"), Float)
_FINAL_BAD = (PhaseStatus.BLOCKED.value, PhaseStatus.FAILED.value)
# The deliveries of one task a page shows (newest first): a task sees a handful; a storm
# of redeliveries is summarised by its count rather than listed.
MAX_TASK_DELIVERIES = 200
# Effects, agent runs and rounds of one task a page shows: a task has dozens at most.
MAX_TASK_ROWS = 500
# Tasks the totals read (the newest first): totals over a longer history belong in the
# metrics, not in a page rendered on each request.
MAX_TOTALS_TASKS = 5_000


# What a page shows of a delivery (never its payload: that is GitHub's text, unbounded).
_DELIVERY_COLUMNS = (
    deliveries.c.delivery_id,
    deliveries.c.hook_id,
    deliveries.c.event,
    deliveries.c.action,
    deliveries.c.parsed,
    deliveries.c.received_at,
    deliveries.c.route_attempts,
    deliveries.c.last_error,
    deliveries.c.dead_at,
)


@dataclass(frozen=True)
class TaskFilter:
    """What the task list is narrowed to; empty fields do not narrow."""

    repo: str = ""
    # A phase state (`pending`, `active`, `complete`, `blocked`, `failed`): tasks with a
    # phase in it, as stored (an active phase whose lease lapsed counts as active here).
    state: str = ""
    blocked: bool = False  # a phase blocked or failed, or the task held
    dead_lettered: bool = False  # a dead-lettered delivery names the task's issue


@dataclass(frozen=True)
class PhaseBrief:
    """One phase of a task as the list shows it."""

    phase: str
    status: str
    attempt: int
    lease_until: float | None


@dataclass(frozen=True)
class TaskBrief:
    """One row of the task list."""

    id: int
    repo: str
    issue_number: int
    title: str
    pr_number: int | None
    held_reason: str | None
    cost_usd: float
    last_activity: float
    phases: list[PhaseBrief] = field(default_factory=list)


@dataclass(frozen=True)
class TaskPage:
    """A page of the task list and how many tasks match in all."""

    total: int
    tasks: list[TaskBrief]


@dataclass(frozen=True)
class TaskHistory:
    """Everything stored about one task, as plain rows (mappings), each list bounded."""

    task: dict[str, Any]
    cost_usd: float
    phases: list[dict[str, Any]]
    agent_runs: list[dict[str, Any]]
    rounds: list[dict[str, Any]]
    effects: list[dict[str, Any]]
    deliveries: list[dict[str, Any]]


@dataclass(frozen=True)
class TaskOutcome:
    """What the totals need of one task."""

    repo: str
    created_at: float
    cost_usd: float
    pr_opened_at: float | None  # when its pull request's effect was done
    ended_badly: bool  # a phase blocked or failed


def _issue_deliveries() -> ColumnElement[bool]:
    """Deliveries whose parsed event names the task's issue (or its pull request)."""
    parsed = deliveries.c.parsed
    repo = parsed["repo"].as_string()
    by_issue = same_issue(repo, parsed["repo_id"].as_integer(), parsed["issue_number"].as_integer())
    by_pull = and_(
        tasks.c.pr_number.is_not(None),
        parsed["pr_number"].as_integer() == tasks.c.pr_number,
        repo == tasks.c.repo,
    )
    return or_(by_issue, by_pull)


def _narrowed(f: TaskFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if f.repo:
        where.append(tasks.c.repo == f.repo)
    if f.state:
        where.append(
            exists().where(phase_runs.c.task_id == tasks.c.id, phase_runs.c.status == f.state)
        )
    if f.blocked:
        bad = exists().where(
            phase_runs.c.task_id == tasks.c.id, phase_runs.c.status.in_(_FINAL_BAD)
        )
        where.append(or_(bad, tasks.c.held_reason.is_not(None)))
    if f.dead_lettered:
        where.append(exists().where(deliveries.c.dead_at.is_not(None), _issue_deliveries()))
    return where


class DashboardReads:
    """SQL for the dashboard's pages (reads only)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def repos(self, limit: int) -> list[str]:
        """The repositories that have tasks, by name (at most `limit`)."""
        stmt = select(tasks.c.repo).distinct().order_by(tasks.c.repo).limit(limit)
        async with self._db.connect() as conn:
            return list((await conn.execute(stmt)).scalars())

    async def task_page(self, f: TaskFilter, *, limit: int, offset: int) -> TaskPage:
        """Tasks matching `f`, the most recently active first, with their phases."""
        latest_phase = (
            select(func.max(phase_runs.c.updated_at))
            .where(phase_runs.c.task_id == tasks.c.id)
            .scalar_subquery()
        )
        # The later of the task's own update and its phases' (a greatest() on both engines).
        last: ColumnElement[Any] = case(
            (latest_phase > tasks.c.updated_at, latest_phase), else_=tasks.c.updated_at
        )
        where = _narrowed(f)
        count = select(func.count()).select_from(tasks).where(*where)
        page = (
            select(
                tasks.c.id,
                tasks.c.repo,
                tasks.c.issue_number,
                tasks.c.title,
                tasks.c.pr_number,
                tasks.c.held_reason,
                _TASK_COST.label("cost_usd"),
                last.label("last_activity"),
            )
            .where(*where)
            .order_by(last.desc(), tasks.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        async with self._db.connect() as conn:
            total = int((await conn.execute(count)).scalar_one())
            rows = (await conn.execute(page)).mappings().all()
            ids = [r["id"] for r in rows]
            runs = (
                (
                    await conn.execute(
                        select(
                            phase_runs.c.task_id,
                            phase_runs.c.phase,
                            phase_runs.c.status,
                            phase_runs.c.attempt,
                            phase_runs.c.lease_until,
                        )
                        .where(phase_runs.c.task_id.in_(ids))
                        .order_by(phase_runs.c.created_at, phase_runs.c.id)
                    )
                )
                .mappings()
                .all()
                if ids
                else []
            )
        by_task: dict[int, list[PhaseBrief]] = {}
        for r in runs:
            by_task.setdefault(r["task_id"], []).append(
                PhaseBrief(r["phase"], r["status"], r["attempt"], r["lease_until"])
            )
        return TaskPage(
            total,
            [
                TaskBrief(
                    id=r["id"],
                    repo=r["repo"],
                    issue_number=r["issue_number"],
                    title=r["title"],
                    pr_number=r["pr_number"],
                    held_reason=r["held_reason"],
                    cost_usd=float(r["cost_usd"] or 0.0),
                    last_activity=float(r["last_activity"]),
                    phases=by_task.get(r["id"], []),
                )
                for r in rows
            ],
        )

    async def task_history(self, task_id: int) -> TaskHistory | None:
        """One task's phases, agent runs, rounds, effects and deliveries, or None."""
        one = select(tasks, _TASK_COST.label("cost_usd")).where(tasks.c.id == task_id)
        runs = (
            select(
                agent_runs,
                phase_runs.c.phase,
            )
            .join(phase_runs, phase_runs.c.id == agent_runs.c.phase_run_id)
            .where(phase_runs.c.task_id == task_id)
            .order_by(agent_runs.c.started_at, agent_runs.c.id)
            .limit(MAX_TASK_ROWS)
        )
        task_deliveries = (
            select(*_DELIVERY_COLUMNS, deliveries.c.routed_at)
            .select_from(deliveries.join(tasks, _issue_deliveries()))
            .where(tasks.c.id == task_id)
            .order_by(deliveries.c.received_at.desc(), deliveries.c.id.desc())
            .limit(MAX_TASK_DELIVERIES)
        )
        async with self._db.connect() as conn:
            row = (await conn.execute(one)).mappings().first()
            if row is None:
                return None
            phases = await _rows(
                conn,
                select(phase_runs)
                .where(phase_runs.c.task_id == task_id)
                .order_by(phase_runs.c.created_at, phase_runs.c.id),
            )
            agents = await _rows(conn, runs)
            task_rounds = await _rows(
                conn,
                select(rounds)
                .where(rounds.c.task_id == task_id)
                .order_by(rounds.c.created_at, rounds.c.id)
                .limit(MAX_TASK_ROWS),
            )
            task_effects = await _rows(
                conn,
                select(effects)
                .where(effects.c.task_id == task_id)
                .order_by(effects.c.created_at, effects.c.id)
                .limit(MAX_TASK_ROWS),
            )
            received = await _rows(conn, task_deliveries)
        task = dict(row)
        cost = float(task.pop("cost_usd") or 0.0)
        return TaskHistory(task, cost, phases, agents, task_rounds, task_effects, received)

    async def outcomes(self, since: float) -> list[TaskOutcome]:
        """The tasks created since `since` (the newest `MAX_TOTALS_TASKS`), for totals."""
        opened = (
            select(func.min(effects.c.done_at))
            .where(
                effects.c.task_id == tasks.c.id,
                effects.c.kind == EffectKind.OPEN_PR.value,
                effects.c.status == "done",
            )
            .scalar_subquery()
        )
        bad = exists().where(
            phase_runs.c.task_id == tasks.c.id, phase_runs.c.status.in_(_FINAL_BAD)
        )
        stmt = (
            select(
                tasks.c.repo,
                tasks.c.created_at,
                _TASK_COST.label("cost_usd"),
                opened.label("pr_opened_at"),
                bad.label("ended_badly"),
            )
            .where(tasks.c.created_at >= since)
            .order_by(tasks.c.created_at.desc())
            .limit(MAX_TOTALS_TASKS)
        )
        async with self._db.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [
            TaskOutcome(
                r["repo"],
                float(r["created_at"]),
                float(r["cost_usd"] or 0.0),
                None if r["pr_opened_at"] is None else float(r["pr_opened_at"]),
                bool(r["ended_badly"]),
            )
            for r in rows
        ]

    async def dead_letters(self, *, limit: int, offset: int) -> tuple[int, list[dict[str, Any]]]:
        """Dead-lettered deliveries (the latest first) with the task they name, if any."""
        dead = deliveries.c.dead_at.is_not(None)
        count = select(func.count()).select_from(deliveries).where(dead)
        stmt = (
            select(*_DELIVERY_COLUMNS, tasks.c.id.label("task_id"))
            .select_from(deliveries.outerjoin(tasks, _issue_deliveries()))
            .where(dead)
            .order_by(deliveries.c.dead_at.desc(), deliveries.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        async with self._db.connect() as conn:
            total = int((await conn.execute(count)).scalar_one())
            rows = [dict(r) for r in (await conn.execute(stmt)).mappings().all()]
        return total, rows


async def _rows(conn: Any, stmt: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in (await conn.execute(stmt)).mappings().all()]
