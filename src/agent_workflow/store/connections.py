"""Where the aggregates get their connections: the pool, or the one a job holds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import Executable

# `$1`-style SQL for asyncpg, compiled once per statement from the same Core expressions.
_ASYNCPG = PGDialect_asyncpg(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]
# Compiled statements kept at most. `fetch` serves a handful of module-level statements;
# the cap only stops a caller passing a fresh statement each time from growing it for ever.
MAX_COMPILED = 64


class Database:
    """Where the aggregates get their connections.

    From the pool, one checkout per statement — or, inside `hold()`, from the one
    connection the current task holds for a whole job: a checkout (and its pre-ping
    round trip) per job instead of per statement. Only the task that called `hold()`
    uses the held connection; tasks it spawns (the lease heartbeat, running beside
    the work) take their own from the pool, so one connection is never used twice at
    once.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self.is_postgres = engine.dialect.name == "postgresql"
        self._held: ContextVar[tuple[asyncio.Task[Any] | None, AsyncConnection] | None] = (
            ContextVar(f"aw_held_connection_{id(self)}", default=None)
        )
        self._compiled: dict[int, tuple[Executable, str, list[str], dict[str, Any]]] = {}
        self._observers: list[Callable[[str], None]] = []

    def observe(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call `callback` with the SQL of every statement sent from now on, whichever way
        it goes (through SQLAlchemy or straight to the driver); returns the unsubscriber.
        For tests and benchmarks that count statements."""

        def on_cursor(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
            callback(sql)

        event.listen(self.engine.sync_engine, "before_cursor_execute", on_cursor)
        self._observers.append(callback)

        def stop() -> None:
            event.remove(self.engine.sync_engine, "before_cursor_execute", on_cursor)
            self._observers.remove(callback)

        return stop

    def _mine(self) -> AsyncConnection | None:
        held = self._held.get()
        if held is None or held[0] is not asyncio.current_task():
            return None
        return held[1]

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Serve this task's statements from one connection until the block ends."""
        if self._mine() is not None:
            yield
            return
        async with self.engine.connect() as conn:
            token = self._held.set((asyncio.current_task(), conn))
            try:
                yield
            finally:
                self._held.reset(token)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside a transaction, committed when the block ends."""
        held = self._mine()
        if held is None:
            async with self.engine.begin() as conn:
                yield conn
        else:
            async with held.begin():
                yield held

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (a short transaction on the held one)."""
        held = self._mine()
        if held is None:
            async with self.engine.connect() as conn:
                yield conn
        else:
            async with held.begin():
                yield held

    async def fetch(self, stmt: Executable, **params: Any) -> list[Any]:
        """Run one statement outside any transaction and return its rows as mappings.

        For the hottest statements (a duplicate storm's reads): on PostgreSQL the query
        goes to asyncpg directly, as a prepared statement with no BEGIN/ROLLBACK around
        it and none of the ORM-free but still costly SQLAlchemy execution path. A single
        statement is atomic by itself, so this is safe for one-statement writes too.
        """
        if not self.is_postgres:
            async with self.begin() as conn:
                result = await conn.execute(stmt, params)
                return list(result.mappings()) if result.returns_rows else []
        sql, names, constants = self._compile(stmt)
        args = [params[name] if name in params else constants[name] for name in names]
        held = self._mine()
        if held is not None:
            return await self._fetch_raw(held, sql, args)
        async with self.engine.connect() as conn:
            return await self._fetch_raw(conn, sql, args)

    async def _fetch_raw(self, conn: AsyncConnection, sql: str, args: list[Any]) -> list[Any]:
        for observer in self._observers:
            observer(sql)
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        return list(await driver.fetch(sql, *args))

    def _compile(self, stmt: Executable) -> tuple[str, list[str], dict[str, Any]]:
        """The statement's SQL, its parameters in order, and the values of those that are
        constants of the statement (e.g. a JSON path) rather than the caller's."""
        cached = self._compiled.get(id(stmt))
        if cached is None or cached[0] is not stmt:
            compiled = stmt.compile(dialect=_ASYNCPG)  # type: ignore[attr-defined]
            names = list(compiled.positiontup or ())
            cached = (stmt, compiled.string, names, dict(compiled.params))
            if len(self._compiled) >= MAX_COMPILED:
                del self._compiled[next(iter(self._compiled))]  # the oldest compiled
            self._compiled[id(stmt)] = cached
        return cached[1], cached[2], cached[3]
