"""The effect ledger's table: one row per keyed side effect (G3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import exists, literal, select, union_all, update

from agent_workflow.core.effects import EffectRow, EffectStart, EffectStatus
from agent_workflow.core.errors import LeaseLost
from agent_workflow.core.model import Guard
from agent_workflow.store.connections import Database
from agent_workflow.store.schema import effects, phase_runs
from agent_workflow.store.sql import insert_ignore


class Effects:
    """SQL for the `effects` table. Writes are fenced by the phase run's token when guarded."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def begin(
        self, starts: Sequence[EffectStart], guard: Guard | None, now: float
    ) -> list[EffectRow]:
        """Insert each effect `started` if absent (fenced), else read it; in the order given.

        All of a hook's effects are begun in one statement; the existing rows are read
        only when some were there already (a retry). Raises `LeaseLost` when the guard's
        fence is stale: a zombie must not act.
        """
        rows = [
            {
                "key": e.key,
                "task_id": e.task_id,
                "phase": e.phase,
                "attempt": e.attempt,
                "kind": e.kind.value,
                "status": EffectStatus.STARTED.value,
                "fingerprint": e.fingerprint,
                "created_at": now,
            }
            for e in starts
        ]
        if guard is None:
            stmt = insert_ignore(self._db.dialect, effects, rows)
        else:
            columns = list(rows[0])
            selects = [
                select(*(literal(v, effects.c[k].type) for k, v in r.items())).where(
                    _fence_holds(guard)
                )
                for r in rows
            ]
            source = selects[0] if len(selects) == 1 else union_all(*selects)
            stmt = insert_ignore(self._db.dialect, effects).from_select(columns, source)
        async with self._db.begin() as conn:
            inserted = set((await conn.execute(stmt.returning(effects.c.key))).scalars())
            if len(inserted) == len(starts):
                return [
                    EffectRow(e.key, e.kind.value, EffectStatus.STARTED, None, True) for e in starts
                ]
            if guard is not None and not inserted and not await _still_fenced(conn, guard):
                raise LeaseLost(f"phase run {guard.run_id}: fence {guard.fence} is stale")
            others = [e.key for e in starts if e.key not in inserted]
            query = select(effects).where(effects.c.key.in_(others))
            found = {r["key"]: r for r in (await conn.execute(query)).mappings()}
        return [
            EffectRow(e.key, e.kind.value, EffectStatus.STARTED, None, True)
            if e.key in inserted
            else EffectRow(
                e.key,
                found[e.key]["kind"],
                EffectStatus(found[e.key]["status"]),
                found[e.key]["external_id"],
            )
            for e in starts
        ]

    async def mark_done(
        self, key: str, external_id: str | None, guard: Guard | None, now: float
    ) -> None:
        """Record the effect done with its external id (fenced when guarded)."""
        values = {"status": EffectStatus.DONE.value, "external_id": external_id, "done_at": now}
        await self._settle(key, guard, values)

    async def mark_refused(self, key: str, guard: Guard | None, now: float) -> None:
        """Record the effect refused by the forge: terminal, never sent again (fenced)."""
        await self._settle(key, guard, {"status": EffectStatus.REFUSED.value, "done_at": now})

    async def _settle(self, key: str, guard: Guard | None, values: dict[str, Any]) -> None:
        """Move a `started` effect on (`done` or `refused`), fenced; `LeaseLost` if stale.
        An effect already settled is left as it is (a duplicate's second write)."""
        stmt = (
            update(effects)
            .where(effects.c.key == key, effects.c.status == EffectStatus.STARTED.value)
            .values(**values)
        )
        if guard is not None:
            stmt = stmt.where(_fence_holds(guard))
        async with self._db.begin() as conn:
            if (await conn.execute(stmt)).rowcount == 1:
                return
            if guard is not None and not await _still_fenced(conn, guard):
                raise LeaseLost(f"phase run {guard.run_id}: fence {guard.fence} is stale")

    async def find(self, key: str) -> EffectRow | None:
        """The effect's row, or None when it was never begun."""
        stmt = select(effects).where(effects.c.key == key)
        async with self._db.connect() as conn:
            r = (await conn.execute(stmt)).mappings().first()
        if r is None:
            return None
        return EffectRow(r["key"], r["kind"], EffectStatus(r["status"]), r["external_id"])

    async def for_task(self, task_id: int) -> list[EffectRow]:
        """All effects of a task (for status and checks)."""
        stmt = select(effects).where(effects.c.task_id == task_id).order_by(effects.c.id)
        async with self._db.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [
            EffectRow(r["key"], r["kind"], EffectStatus(r["status"]), r["external_id"])
            for r in rows
        ]


def _fence_holds(guard: Guard) -> Any:
    return exists().where(phase_runs.c.id == guard.run_id, phase_runs.c.fence == guard.fence)


async def _still_fenced(conn: Any, guard: Guard) -> bool:
    return bool((await conn.execute(select(_fence_holds(guard)))).scalar())
