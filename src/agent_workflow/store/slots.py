"""Agent slots: `AW_MAX_AGENTS` and `AW_MAX_AGENTS_PER_REPO` across every worker.

A slot is a row leased by the worker whose agent runs: live while it is not released
and its lease has not passed (a dead worker's slot frees itself when its lease does).
Taking one is one conditional statement, `INSERT … SELECT … WHERE <live overall> < cap
AND <live for the repository> < cap`. On PostgreSQL two such statements at once could
each count before the other's row exists (READ COMMITTED), so the transaction first
takes an advisory lock that serialises acquires (a few per agent run: cheap); SQLite
serialises writers by itself. Released rows stay as history until `prune`.
"""

from __future__ import annotations

from sqlalchemy import Float, Integer, String, bindparam, delete, func, select, text, update

from agent_workflow.core.ports import SlotUse
from agent_workflow.store.connections import Database
from agent_workflow.store.schema import agent_slots

# Any constant works; it only has to be the same for every process of the deployment
# (and differ from the migration lock's).
SLOTS_LOCK_ID = 0x61775F736C74
_LIVE = "released_at IS NULL AND lease_until >= :now"
_ACQUIRE = text(
    "INSERT INTO agent_slots (repo, holder, phase_run_id, acquired_at, lease_until)"
    " SELECT :repo, :holder, :phase_run_id, :now, :lease_until"
    f" WHERE (SELECT count(*) FROM agent_slots WHERE {_LIVE}) < :max_total"
    f" AND (SELECT count(*) FROM agent_slots WHERE repo = :repo AND {_LIVE}) < :max_repo"
    " RETURNING id"
).bindparams(
    bindparam("repo", type_=String),
    bindparam("holder", type_=String),
    bindparam("phase_run_id", type_=Integer),
    bindparam("now", type_=Float),
    bindparam("lease_until", type_=Float),
    bindparam("max_total", type_=Integer),
    bindparam("max_repo", type_=Integer),
)
c = agent_slots.c


class AgentSlotLeases:
    """SQL for `agent_slots`; implements the core's `AgentSlots`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def acquire(
        self,
        repo: str,
        holder: str,
        *,
        phase_run_id: int | None,
        max_total: int,
        max_per_repo: int,
        lease_s: float,
        now: float,
    ) -> int | None:
        """A slot for an agent run on `repo`, or None while the caps are reached."""
        params = {
            "repo": repo,
            "holder": holder,
            "phase_run_id": phase_run_id,
            "now": now,
            "lease_until": now + lease_s,
            "max_total": max_total,
            "max_repo": max_per_repo,
        }
        async with self._db.begin() as conn:
            if self._db.is_postgres:
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SLOTS_LOCK_ID})
            slot = (await conn.execute(_ACQUIRE, params)).scalar()
        return None if slot is None else int(slot)

    async def renew(self, slot_id: int, lease_s: float, now: float) -> bool:
        """Extend a live slot's lease; False when it had expired or was released."""
        stmt = (
            update(agent_slots)
            .where(c.id == slot_id, c.released_at.is_(None), c.lease_until >= now)
            .values(lease_until=now + lease_s)
        )
        async with self._db.begin() as conn:
            return (await conn.execute(stmt)).rowcount == 1

    async def release(self, slot_id: int, now: float) -> None:
        """Give the slot back (the run ended, or was cancelled)."""
        stmt = (
            update(agent_slots)
            .where(c.id == slot_id, c.released_at.is_(None))
            .values(released_at=now)
        )
        async with self._db.begin() as conn:
            await conn.execute(stmt)

    async def in_use(self, now: float) -> list[SlotUse]:
        """The live slots, oldest first (`aw status`)."""
        stmt = (
            select(c.repo, c.holder, c.phase_run_id, c.acquired_at, c.lease_until)
            .where(c.released_at.is_(None), c.lease_until >= now)
            .order_by(c.id)
        )
        async with self._db.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [SlotUse(**r) for r in rows]

    async def prune(self, before: float, limit: int) -> int:
        """Delete up to `limit` slots released (or expired) before `before`; how many went."""
        old = (
            select(c.id)
            .where(func.coalesce(c.released_at, c.lease_until) < before)
            .order_by(c.id)
            .limit(limit)
        )
        async with self._db.begin() as conn:
            return (await conn.execute(delete(agent_slots).where(c.id.in_(old)))).rowcount
