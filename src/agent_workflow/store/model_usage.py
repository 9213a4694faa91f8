"""The `model_usage` table: spending metered by the agent's model proxy as it happens.

A run's own report (`phase_runs.cost_usd`) arrives only when the run ends, so a run
killed mid-way reported nothing; the proxy's rows are written while the responses
stream. A task's spending is the larger of the two sums: both count the same model
calls when the proxy is in use, and only the reports exist when it is not (the
scripted agent, a command agent).
"""

from __future__ import annotations

from sqlalchemy import Float, Integer, bindparam, text
from sqlalchemy.dialects import postgresql, sqlite

from agent_workflow.core.ports import ModelUsage
from agent_workflow.store.connections import Database
from agent_workflow.store.schema import model_usage


def spent_sql(task_ref: str) -> str:
    """SQL for what task `task_ref` (a column or a bound parameter) has spent."""
    reported = (
        f"(SELECT coalesce(sum(r.cost_usd), 0.0) FROM phase_runs AS r WHERE r.task_id = {task_ref})"
    )
    metered = f"(SELECT coalesce(sum(u.cost_usd), 0.0) FROM model_usage AS u WHERE u.task_id = {task_ref})"
    return f"(CASE WHEN {metered} > {reported} THEN {metered} ELSE {reported} END)"


# The deployment's spending since a time: per task the larger of what the proxy metered
# (rows written since) and what the agents reported (runs started since), summed. A run
# is counted on the day it started; the proxy's rows on the day each response started.
_SPENT_SINCE = text(
    "SELECT coalesce(sum(CASE WHEN m > r THEN m ELSE r END), 0.0) AS spent FROM ("
    " SELECT task_id, sum(m) AS m, sum(r) AS r FROM ("
    "  SELECT u.task_id AS task_id, u.cost_usd AS m, 0.0 AS r FROM model_usage AS u"
    "   WHERE u.created_at >= :since"
    "  UNION ALL"
    "  SELECT p.task_id, 0.0, a.cost_usd FROM agent_runs AS a"
    "   JOIN phase_runs AS p ON p.id = a.phase_run_id WHERE a.started_at >= :since"
    " ) AS spending GROUP BY task_id"
    ") AS per_task"
).bindparams(bindparam("since", type_=Float))

_SPENT = text(f"SELECT {spent_sql(':task_id')} AS spent").bindparams(
    bindparam("task_id", type_=Integer)
)


class ModelUsageLog:
    """SQL for `model_usage`; implements the core's `UsageMeter` and `Spending`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, usage: ModelUsage, now: float) -> None:
        """Insert the response's row, or update it with the later (larger) counts."""
        values = {
            "request_id": usage.request_id,
            "task_id": usage.task_id,
            "phase": usage.phase.value,
            "attempt": usage.attempt,
            "model": usage.model[:200],
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_creation_tokens": usage.cache_creation_tokens,
            "cache_read_tokens": usage.cache_read_tokens,
            "cost_usd": usage.cost_usd,
            "created_at": now,
            "updated_at": now,
        }
        flavour = postgresql if self._db.dialect.name == "postgresql" else sqlite
        stmt = flavour.insert(model_usage).values(**values)
        changed = {
            k: stmt.excluded[k]
            for k in values
            if k not in ("request_id", "task_id", "phase", "attempt", "created_at")
        }
        async with self._db.begin() as conn:
            await conn.execute(
                stmt.on_conflict_do_update(index_elements=["request_id"], set_=changed)
            )

    async def task_spent(self, task_id: int) -> float:
        """The task's spending: the larger of metered usage and the runs' reports."""
        rows = await self._db.fetch(_SPENT, task_id=task_id)
        return float(rows[0]["spent"])

    async def spent_since(self, since: float) -> float:
        """The deployment's spending since `since` (the daily budget's meter)."""
        rows = await self._db.fetch(_SPENT_SINCE, since=since)
        return float(rows[0]["spent"])
