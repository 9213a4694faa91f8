"""Connections: one per job inside `hold()`, never shared with spawned tasks; stale ones replaced."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import select, text

from agent_workflow.store import Store, connect
from agent_workflow.store import db as store_db
from agent_workflow.store.connections import MAX_COMPILED
from agent_workflow.store.schema import tasks
from tests.conftest import PG_ADMIN_URL, drop_pg_database, new_pg_database


async def _backend(store: Store) -> int:
    async with store.db.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


@pytest.fixture
async def pg_store(pg_template: str) -> AsyncIterator[Store]:
    """PostgreSQL only: backend pids and killed connections are a server's notions."""
    url = await new_pg_database(pg_template)
    yield await connect(url, migrate=False)
    await drop_pg_database(url)


async def test_hold__one_connection_for_the_task_its_children_use_others(
    pg_store: Store,
) -> None:
    store = pg_store
    try:
        async with store.hold():
            first, second = await _backend(store), await _backend(store)
            child = await asyncio.create_task(_backend(store))
        assert first == second
        assert child != first  # the heartbeat beside a job never shares its connection
    finally:
        await store.close()


async def test_fetch__straight_to_the_driver_outside_a_transaction(pg_store: Store) -> None:
    store = pg_store
    seen: list[str] = []
    stop = store.db.observe(seen.append)
    try:
        async with store.hold():
            rows = await store.db.fetch(select(tasks.c.id))
            async with store.db.connect() as conn:
                in_tx = (await conn.execute(text("SELECT now() = statement_timestamp()"))).scalar()
        assert rows == []
        assert in_tx is False  # the held connection's reads run in their own transaction
        assert any("FROM tasks" in sql for sql in seen)  # counted like any other statement
    finally:
        stop()
        await store.close()


async def test_checkout__a_connection_killed_while_idle_is_replaced(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Window: PostgreSQL dropped a pooled connection (restart, idle timeout) while it sat
    idle; the next checkout pings it, finds it dead, and takes a new one."""
    store = pg_store
    try:
        victim = await _backend(store)
        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await admin.execute("SELECT pg_terminate_backend($1)", victim)
        finally:
            await admin.close()
        monkeypatch.setattr(store_db, "IDLE_PING_S", 0.0)  # it has been idle long enough
        assert await _backend(store) != victim
    finally:
        await store.close()


async def test_fetch__compiled_statements_are_bounded(pg_store: Store) -> None:
    """A fresh statement per call (not how the store calls `fetch`, but possible) keeps
    at most `MAX_COMPILED` compiled entries; the newest is kept and still right."""
    store = pg_store
    try:
        for n in range(MAX_COMPILED + 10):
            [row] = await store.db.fetch(select(text(f"{n} AS n")))
            assert row["n"] == n
        assert len(store.db._compiled) == MAX_COMPILED
    finally:
        await store.close()
