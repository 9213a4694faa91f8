"""The effect ledger's table: one row per keyed side effect (G3)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import exists, literal, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_workflow.core.model import Guard
from agent_workflow.errors import LeaseLost
from agent_workflow.store.schema import effects, phase_runs
from agent_workflow.store.sql import insert_ignore


class EffectStatus(StrEnum):
    """`started`: the request may have been sent. `done`: it was, and we know the result."""

    STARTED = "started"
    DONE = "done"


@dataclass(frozen=True)
class EffectRow:
    """A stored effect, and whether this call created it."""

    key: str
    kind: str
    status: EffectStatus
    external_id: str | None
    fresh: bool = False


class Effects:
    """SQL for the `effects` table. Writes are fenced by the phase run's token when guarded."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def begin(
        self,
        *,
        key: str,
        task_id: int | None,
        phase: str,
        attempt: int,
        kind: str,
        fingerprint: str,
        guard: Guard | None,
        now: float,
    ) -> EffectRow:
        """Insert the effect `started` if absent (fenced), else read it.

        Raises `LeaseLost` when the guard's fence is stale: a zombie must not act.
        """
        values: dict[str, Any] = {
            "key": key,
            "task_id": task_id,
            "phase": phase,
            "attempt": attempt,
            "kind": kind,
            "status": EffectStatus.STARTED.value,
            "fingerprint": fingerprint,
            "created_at": now,
        }
        async with self._engine.begin() as conn:
            if guard is None:
                stmt = insert_ignore(self._engine, effects, **values)
            else:
                stmt = insert_ignore(self._engine, effects).from_select(
                    list(values),
                    select(*(literal(v) for v in values.values())).where(_fence_holds(guard)),
                )
            inserted = (await conn.execute(stmt.returning(effects.c.key))).first()
            if inserted is not None:
                return EffectRow(key, kind, EffectStatus.STARTED, None, fresh=True)
            if guard is not None and not await _still_fenced(conn, guard):
                raise LeaseLost(f"phase run {guard.run_id}: fence {guard.fence} is stale")
            row = (await conn.execute(select(effects).where(effects.c.key == key))).mappings().one()
        return EffectRow(row["key"], row["kind"], EffectStatus(row["status"]), row["external_id"])

    async def mark_done(
        self, key: str, external_id: str | None, guard: Guard | None, now: float
    ) -> None:
        """Record the effect done with its external id (fenced when guarded)."""
        stmt = (
            update(effects)
            .where(effects.c.key == key, effects.c.status == EffectStatus.STARTED.value)
            .values(status=EffectStatus.DONE.value, external_id=external_id, done_at=now)
        )
        if guard is not None:
            stmt = stmt.where(_fence_holds(guard))
        async with self._engine.begin() as conn:
            if (await conn.execute(stmt)).rowcount == 1:
                return
            if guard is not None and not await _still_fenced(conn, guard):
                raise LeaseLost(f"phase run {guard.run_id}: fence {guard.fence} is stale")

    async def for_task(self, task_id: int) -> list[EffectRow]:
        """All effects of a task (for status and checks)."""
        stmt = select(effects).where(effects.c.task_id == task_id).order_by(effects.c.id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [
            EffectRow(r["key"], r["kind"], EffectStatus(r["status"]), r["external_id"])
            for r in rows
        ]


def _fence_holds(guard: Guard) -> Any:
    return exists().where(phase_runs.c.id == guard.run_id, phase_runs.c.fence == guard.fence)


async def _still_fenced(conn: Any, guard: Guard) -> bool:
    return bool((await conn.execute(select(_fence_holds(guard)))).scalar())
