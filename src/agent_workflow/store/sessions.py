"""`session_entries`: Claude Code transcripts mirrored to the database (the SDK's `SessionStore`).

The CLI writes its transcript to the worker's disk; claude-agent-sdk passes every line
to `SessionEntries.append` as well, so a worker on another machine can `load` the
conversation and resume the same session id.

Identity: a session's lines are found by (session id, subpath). The SDK's
`project_key` (the CLI's sanitised working directory) is recorded but not matched:
each machine has its own workspace directory, so the same worktree has another key
there, and the session id (a UUID of task, phase and attempt) is already unique.

Entries are repository-influenced JSON (tool outputs of files the agent read). They are
stored as JSON text with every non-ASCII character escaped, so NUL and lone surrogates,
which PostgreSQL's JSONB and TEXT refuse, come back exactly as they went in.

Bounds: `load` returns None for a session whose lines add up to more than
`MAX_SESSION_BYTES` (such a session is resumed from the local disk only, or starts
afresh on another machine) rather than holding an unbounded transcript in memory.
Retention: `delete_idle` (the sweeper) drops whole sessions not written to for
`AW_SESSION_RETENTION_DAYS`; a settling phase keeps its transcript, so a takeover racing
the settle still finds it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, cast

from claude_agent_sdk.types import (
    SessionKey,
    SessionListSubkeysKey,
    SessionStore,
    SessionStoreEntry,
)
from sqlalchemy import bindparam, delete, func, select

from agent_workflow.store.connections import Database
from agent_workflow.store.schema import session_entries
from agent_workflow.store.sql import insert_ignore

# A transcript bigger than this is not loaded (memory of the resuming worker); a phase's
# turn and dollar limits keep real ones far below it.
MAX_SESSION_BYTES = 64 * 1024 * 1024
# The widths of the key columns (schema.py): longer values are not stored.
_ID_MAX = 100
_SUBPATH_MAX = 300
_PROJECT_MAX = 300
# Rows per INSERT: 6 parameters each stay below both drivers' parameter limits.
_ROWS_PER_INSERT = 1000

_KEY = (session_entries.c.session_id == bindparam("session_id")) & (
    session_entries.c.subpath == bindparam("subpath")
)
_SIZE = select(func.coalesce(func.sum(func.length(session_entries.c.entry)), 0)).where(_KEY)
_LINES = select(session_entries.c.entry).where(_KEY).order_by(session_entries.c.id)


def encode(entry: object) -> str:
    """One transcript line as ASCII JSON text (exact round trip through `json.loads`)."""
    return json.dumps(entry, ensure_ascii=True, separators=(",", ":"))


class SessionEntries(SessionStore):
    """A `claude_agent_sdk.types.SessionStore` over the store's database.

    Implements `append` and `load` (required), `delete` and `list_subkeys` (so a
    resume also brings subagent transcripts); the listing methods are inherited from the
    protocol, which marks them absent to the SDK: only `continue_conversation` needs them
    (never used: every run names its session id).
    """

    # The protocol's own defaults, which the SDK recognises as "not implemented".
    list_sessions = SessionStore.list_sessions
    list_session_summaries = SessionStore.list_session_summaries

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        """Store a batch of lines in order; a line whose `uuid` is already stored is skipped
        (the SDK retries a batch that timed out, and two writers may mirror the same line)."""
        if not entries:
            return
        session_id, subpath = _key(key)
        now = self._clock()
        project = str(key.get("project_key", ""))[:_PROJECT_MAX]
        rows = [
            {
                "project_key": project,
                "session_id": session_id,
                "subpath": subpath,
                "uuid": _uuid(entry),
                "entry": encode(entry),
                "created_at": now,
            }
            for entry in entries
        ]
        async with self._db.begin() as conn:  # one transaction: a batch lands whole or not
            for start in range(0, len(rows), _ROWS_PER_INSERT):
                chunk = rows[start : start + _ROWS_PER_INSERT]
                await conn.execute(insert_ignore(self._db.dialect, session_entries, chunk))

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        """The session's lines in the order they were stored; None when there are none,
        or when they exceed `MAX_SESSION_BYTES` (see the module's docstring)."""
        session_id, subpath = _key(key)
        params = {"session_id": session_id, "subpath": subpath}
        async with self._db.connect() as conn:
            size = (await conn.execute(_SIZE, params)).scalar_one()
            if not size or int(size) > MAX_SESSION_BYTES:
                return None
            lines = (await conn.execute(_LINES, params)).scalars().all()
        if not lines:
            return None
        return [cast(SessionStoreEntry, json.loads(line)) for line in lines]

    async def delete(self, key: SessionKey) -> None:
        """Delete a session; the main transcript's key takes its subagent transcripts along."""
        session_id, subpath = _key(key)
        stmt = delete(session_entries).where(session_entries.c.session_id == session_id)
        if subpath:
            stmt = stmt.where(session_entries.c.subpath == subpath)
        async with self._db.begin() as conn:
            await conn.execute(stmt)

    async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
        """The subpaths (subagent transcripts) stored under a session."""
        stmt = (
            select(session_entries.c.subpath)
            .where(session_entries.c.session_id == key["session_id"])
            .where(session_entries.c.subpath != "")
            .distinct()
            .order_by(session_entries.c.subpath)
        )
        async with self._db.connect() as conn:
            return list((await conn.execute(stmt)).scalars().all())

    async def delete_idle(self, written_before: float, limit: int) -> int:
        """Delete the lines of at most `limit` sessions whose last line was stored before
        `written_before`; return how many lines went. A session still being written keeps
        all its lines (a partial transcript could not be resumed)."""
        lines = session_entries.c
        # Only sessions with an old line are looked at (the `created_at` index), not the
        # whole table; one still written to since is not idle. Some of a few times `limit`
        # candidates are idle unless sessions live for weeks (phase runs do not).
        old = select(lines.session_id).where(lines.created_at < written_before).distinct()
        idle = (
            select(lines.session_id)
            .where(lines.session_id.in_(old.limit(limit * 4).scalar_subquery()))
            .group_by(lines.session_id)
            .having(func.max(lines.created_at) < written_before)
            .limit(limit)
        )
        stmt = delete(session_entries).where(
            session_entries.c.session_id.in_(idle.scalar_subquery())
        )
        async with self._db.begin() as conn:
            return (await conn.execute(stmt)).rowcount


def _key(key: SessionKey) -> tuple[str, str]:
    session_id = str(key["session_id"])
    subpath = str(key.get("subpath") or "")
    if not session_id or len(session_id) > _ID_MAX or len(subpath) > _SUBPATH_MAX:
        raise ValueError(f"unusable session key: {session_id[:_ID_MAX]!r}")
    return session_id, subpath


def _uuid(entry: Any) -> str | None:
    """The line's idempotency key, when it has a usable one."""
    value = entry.get("uuid") if isinstance(entry, dict) else None
    return value if isinstance(value, str) and 0 < len(value) <= _ID_MAX else None
