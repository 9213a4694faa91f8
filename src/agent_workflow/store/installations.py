"""GitHub App installations we were told about (`installation` events): which are
suspended or deleted. A task's own hold is `tasks.held_reason` (see `Tasks.hold`)."""

from __future__ import annotations

from sqlalchemy import select, update

from agent_workflow.store.connections import Database
from agent_workflow.store.schema import installations
from agent_workflow.store.sql import insert_ignore

ACTIVE = "active"
SUSPENDED = "suspended"
DELETED = "deleted"


class Installations:
    """SQL for the `installations` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def set_state(self, installation_id: int, state: str, account: str, now: float) -> None:
        """Record the installation's state (insert or update; the latest event wins)."""
        insert = insert_ignore(
            self._db.dialect,
            installations,
            id=installation_id,
            account=account,
            state=state,
            updated_at=now,
        )
        change = (
            update(installations)
            .where(installations.c.id == installation_id)
            .values(state=state, account=account, updated_at=now)
        )
        async with self._db.begin() as conn:
            await conn.execute(insert)
            await conn.execute(change)

    async def held(self, installation_id: int) -> str | None:
        """Why nothing may start for this installation (None: it may)."""
        stmt = select(installations.c.state).where(installations.c.id == installation_id)
        async with self._db.connect() as conn:
            state = (await conn.execute(stmt)).scalar_one_or_none()
        if state is None or state == ACTIVE:
            return None
        return f"installation {installation_id} is {state}"

    async def inactive(self) -> list[tuple[int, str, str, float]]:
        """Installations suspended or deleted: (id, account, state, since), for `aw status`."""
        stmt = (
            select(
                installations.c.id,
                installations.c.account,
                installations.c.state,
                installations.c.updated_at,
            )
            .where(installations.c.state != ACTIVE)
            .order_by(installations.c.id)
        )
        async with self._db.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [(int(r[0]), str(r[1]), str(r[2]), float(r[3])) for r in rows]
