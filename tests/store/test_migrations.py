"""Every migration applied gives exactly the declared schema, on both engines."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from agent_workflow.store import Store
from agent_workflow.store.schema import metadata


def _diff(connection: Any) -> list[Any]:
    context = MigrationContext.configure(connection)
    return list(compare_metadata(context, metadata))


async def test_migrations__match_declared_schema(store: Store) -> None:
    async with store.engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == []


async def test_migrations__upgrade_is_idempotent(db_url: str) -> None:
    from agent_workflow.store import connect

    for _ in range(2):
        s = await connect(db_url)
        await s.ping()
        await s.close()
