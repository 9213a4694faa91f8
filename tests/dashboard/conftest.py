"""The dashboard's tests run on PostgreSQL (the production store); the reads whose SQL
differs between engines (filters, the timeline) run on SQLite too, by parametrising
`db_url` indirectly with both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent_workflow.store import connect
from tests.conftest import drop_pg_database, new_pg_database


@pytest.fixture(params=["postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, migrated database: PostgreSQL unless a test asks for SQLite too."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'aw.db'}"
        await (await connect(url)).close()
        yield url
        return
    url = await new_pg_database(request.getfixturevalue("pg_template"))
    yield url
    await drop_pg_database(url)
