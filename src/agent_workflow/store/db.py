"""Engine creation, schema upgrade, and the `Store` that bundles the aggregates."""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from agent_workflow.core.errors import ConfigError
from agent_workflow.store.connections import Database
from agent_workflow.store.deliveries import Deliveries
from agent_workflow.store.effects import Effects
from agent_workflow.store.installations import Installations
from agent_workflow.store.model_usage import ModelUsageLog
from agent_workflow.store.phase_runs import PhaseRuns
from agent_workflow.store.rounds import Rounds
from agent_workflow.store.sessions import SessionEntries
from agent_workflow.store.slots import AgentSlotLeases
from agent_workflow.store.tasks import Tasks

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same for every process of the deployment.
MIGRATION_LOCK_ID = 0x61775F6D6967
# A pooled connection idle longer than this is pinged before use; one used more
# recently is trusted (a PostgreSQL restart within that window fails one statement,
# and the job is retried by the queue or the sweeper).
IDLE_PING_S = 5.0
# Writers on SQLite wait this long for the file lock instead of failing at once.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str) -> str:
    """Map plain `sqlite:`/`postgresql:` URLs to their async drivers."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"malformed database URL {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    else:
        raise ConfigError(f"unsupported database {backend!r}: use sqlite or postgresql")
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets WAL and a busy timeout so writers queue."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # aiosqlite opens a transaction lazily; BEGIN IMMEDIATE-like behaviour
            # is not needed because every write is one conditional statement.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    engine = create_async_engine(url, pool_size=10, max_overflow=20)
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Check a pooled connection before use only if it sat idle for a while.

    `pool_pre_ping` pings on every checkout: a round trip per job on the hot path. A
    connection used within the last `IDLE_PING_S` is as good as one just pinged; an
    older one is pinged, and a dead one is replaced (the pool retries the checkout).
    """
    dialect = engine.sync_engine.dialect

    @event.listens_for(engine.sync_engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("aw_used_at", 0.0) > IDLE_PING_S:
            try:
                dialect.do_ping(dbapi_conn)
            except Exception as exc:
                raise DisconnectionError(f"stale pooled connection: {exc}") from exc

    @event.listens_for(engine.sync_engine, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["aw_used_at"] = time.monotonic()


def _alembic_upgrade(connection: Connection) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the schema to head. Safe when many processes start at once."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Serialise concurrent upgrades (several workers starting together).
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_ID})
        await conn.run_sync(_alembic_upgrade)


class Store:
    """One narrow boundary to the database: the connections and one object per aggregate."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.db = Database(engine)
        self.deliveries = Deliveries(self.db)
        self.tasks = Tasks(self.db)
        self.phases = PhaseRuns(self.db)
        self.effects = Effects(self.db)
        self.usage = ModelUsageLog(self.db)
        self.rounds = Rounds(self.db)
        self.slots = AgentSlotLeases(self.db)
        self.installations = Installations(self.db)
        self.sessions = SessionEntries(self.db)

    def hold(self) -> AbstractAsyncContextManager[None]:
        """Use one connection for every statement of the current task (a job) in this block."""
        return self.db.hold()

    async def ping(self) -> None:
        """One trivial query; raises if the database cannot answer it."""
        async with self.db.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        """Dispose of the connection pool."""
        await self.engine.dispose()


async def connect(url: str, *, migrate: bool = True, connect_timeout_s: float = 10.0) -> Store:
    """Open the database at `url`, upgrade its schema, and return a `Store`.

    Raises `ConfigError` with one line when the database cannot be reached.
    """
    _check_sqlite_directory(url)
    engine = create_engine(url)
    if migrate:
        try:
            await asyncio.wait_for(upgrade(engine), connect_timeout_s)
        except (OSError, TimeoutError, DBAPIError) as exc:
            await engine.dispose()
            shown = make_url(url).render_as_string()  # password hidden
            reason = getattr(exc, "orig", None) or exc
            raise ConfigError(f"cannot use database {shown}: {_one_line(reason)}") from exc
    return Store(engine)


def _check_sqlite_directory(url: str) -> None:
    """A SQLite file in a missing directory is a configuration error, found before
    aiosqlite starts a thread for it (that thread outlives a failed open)."""
    parsed = make_url(normalize_url(url))
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return
    if not Path(database).expanduser().parent.is_dir():
        raise ConfigError(
            f"cannot use database {url}: directory {Path(database).parent} does not exist"
        )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
