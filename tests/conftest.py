"""Shared fixtures: a store on SQLite or PostgreSQL (a fresh database per test), a fake clock.

PostgreSQL tests never skip: a missing server is a failure (CI must start it).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest
import redis

from agent_workflow.config import Settings
from agent_workflow.core.rounds import RoundLimits
from agent_workflow.store import Store, connect
from agent_workflow.store.db import create_engine, upgrade

PG_ADMIN_URL = os.environ.get(
    "AW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("AW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BACKENDS = os.environ.get("AW_TEST_BACKENDS", "sqlite,postgres").split(",")
# Cores built by tests cache permissions as a deployment does: `AW_PERMISSION_TTL_S`'s one default.
PERMISSION_TTL_S: float = Settings.model_fields["permission_ttl_s"].default
# And bound rounds after the pull request by the deployment's defaults.
ROUND_LIMITS = RoundLimits(
    revise=Settings.model_fields["max_revise_rounds"].default,
    repair=Settings.model_fields["max_repair_rounds"].default,
)


def _pg_url(database: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


class FakeClock:
    """A clock tests move by hand, so a lease can expire without waiting."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The real Redis server (fails loudly when it is down; tests never skip)."""
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2) as client:
            client.ping()
    except redis.RedisError as err:
        pytest.fail(f"Redis at {REDIS_URL} is not reachable ({err}); start redis-server")
    return REDIS_URL


@pytest.fixture
def clock() -> FakeClock:
    """A fresh fake clock."""
    return FakeClock()


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated template database, cloned per test (fast) and dropped at the end."""
    import asyncio

    name = f"aw_tpl_{os.getpid()}"

    async def create() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL.replace("postgresql+asyncpg", "postgresql"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        engine = create_engine(_pg_url(name))
        await upgrade(engine)
        await engine.dispose()

    async def drop() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    # Session fixtures may be first requested from inside a running loop: use a thread.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, create()).result()
        yield name
        pool.submit(asyncio.run, drop()).result()


async def new_pg_database(template: str) -> str:
    """Clone the template into a fresh database; return its URL."""
    name = f"aw_t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await conn.close()
    return _pg_url(name)


async def drop_pg_database(url: str) -> None:
    """Drop a per-test database."""
    name = url.rpartition("/")[2]
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, migrated database URL on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'aw.db'}"
        await (await connect(url)).close()  # migrated, like the PostgreSQL template
        yield url
        return
    template = request.getfixturevalue("pg_template")
    url = await new_pg_database(template)
    yield url
    await drop_pg_database(url)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    """A connected, migrated store."""
    s = await connect(db_url)
    yield s
    await s.close()
