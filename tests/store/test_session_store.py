"""The SessionStore adapter (`store.sessions`): what the SDK mirrors comes back, in order,
exactly, once, on both engines; and the SDK itself drives it through a real resume."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest
from claude_agent_sdk import ClaudeAgentOptions
from claude_agent_sdk._internal.session_resume import materialize_resume_session
from claude_agent_sdk.types import SessionKey, SessionStoreEntry
from sqlalchemy import func, select, update

from agent_workflow.store import Store
from agent_workflow.store import sessions as sessions_module
from agent_workflow.store.schema import session_entries

SESSION = "6f1c2a94-3b7e-4c1d-9a2f-0e5b8d7c6a41"
KEY: SessionKey = {"project_key": "-work-ws-a", "session_id": SESSION}


def line(n: int, **extra: Any) -> SessionStoreEntry:
    """A transcript line like the CLI's: a type, a uuid, a message."""
    entry = {"type": "user", "uuid": f"u-{n:05d}", "message": {"content": f"turn {n}"}, **extra}
    return cast(SessionStoreEntry, entry)


async def test_round_trip__lines_come_back_in_order_on_any_project_key(store: Store) -> None:
    batches = [[line(1), line(2)], [line(3)], [line(4), line(5), line(6)]]
    for batch in batches:
        await store.sessions.append(KEY, batch)
    # Another machine: another workspace, another sanitised cwd, the same session id.
    loaded = await store.sessions.load({"project_key": "-srv-other-ws", "session_id": SESSION})
    assert loaded == [e for batch in batches for e in batch]
    assert await store.sessions.load({"project_key": "x", "session_id": "never-written"}) is None


async def test_append__a_repeated_uuid_is_stored_once_lines_without_one_always(
    store: Store,
) -> None:
    untitled = cast(SessionStoreEntry, {"type": "summary", "summary": "same"})
    await store.sessions.append(KEY, [line(1), untitled, line(2)])
    await store.sessions.append(KEY, [line(2), line(3), untitled])  # a retried batch
    loaded = await store.sessions.load(KEY)
    assert loaded == [line(1), untitled, line(2), line(3), untitled]


async def test_append__thousands_of_lines_in_one_batch(store: Store) -> None:
    many = [line(n, toolUseResult={"stdout": "x" * 200}) for n in range(2500)]
    await store.sessions.append(KEY, many)
    assert await store.sessions.load(KEY) == many


async def test_hostile_bytes__nul_lone_surrogates_and_quotes_round_trip_exactly(
    store: Store,
) -> None:
    hostile = 'file\x00with NUL \ud800 lone \udfff surrogates "quotes" \\ \' \u202e bidi 🙂'
    entry = line(1, toolUseResult={"stdout": hostile, hostile: [hostile, 1, None, True]})
    await store.sessions.append(KEY, [entry])
    loaded = await store.sessions.load(KEY)
    assert loaded == [entry]


async def test_subpaths__kept_apart_listed_and_deleted_with_the_session(store: Store) -> None:
    agent: SessionKey = {**KEY, "subpath": "subagents/agent-1"}
    await store.sessions.append(KEY, [line(1)])
    await store.sessions.append(agent, [line(2)])
    assert await store.sessions.load(KEY) == [line(1)]
    assert await store.sessions.load(agent) == [line(2)]
    assert await store.sessions.list_subkeys(KEY) == ["subagents/agent-1"]
    await store.sessions.delete(KEY)
    assert await store.sessions.load(agent) is None


async def test_load__a_transcript_past_the_bound_is_not_loaded(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.sessions.append(KEY, [line(1), line(2)])
    size = sum(len(sessions_module.encode(e)) for e in (line(1), line(2)))
    monkeypatch.setattr(sessions_module, "MAX_SESSION_BYTES", size)
    assert await store.sessions.load(KEY) == [line(1), line(2)]
    monkeypatch.setattr(sessions_module, "MAX_SESSION_BYTES", size - 1)
    assert await store.sessions.load(KEY) is None


async def test_delete_idle__whole_idle_sessions_go_a_live_one_stays(store: Store) -> None:
    idle: SessionKey = {"project_key": "p", "session_id": "idle-session"}
    await store.sessions.append(idle, [line(1), line(2)])
    await store.sessions.append(KEY, [line(1)])
    async with store.engine.begin() as conn:  # idle wrote long ago; KEY's first line too
        await conn.execute(update(session_entries).values(created_at=100.0))
    await store.sessions.append(KEY, [line(2)])  # ... but KEY is still being written
    cutoff = 1_000.0
    assert await store.sessions.delete_idle(cutoff, limit=10) == 2
    assert await store.sessions.load(idle) is None
    assert await store.sessions.load(KEY) == [line(1), line(2)]


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_concurrent_writers__every_line_once_each_writers_order_kept(store: Store) -> None:
    """Two workers mirroring the same session at once (a zombie and its takeover)."""

    async def writer(name: str) -> None:
        for n in range(40):
            shared = line(n)  # both mirror these: stored once
            own = cast(SessionStoreEntry, {"type": "user", "uuid": f"{name}-{n}"})
            await store.sessions.append(KEY, [shared, own])

    await asyncio.gather(writer("a"), writer("b"))
    loaded = await store.sessions.load(KEY)
    assert loaded is not None
    uuids = [e["uuid"] for e in loaded]
    assert len(uuids) == len(set(uuids)) == 40 + 80
    for name in ("a", "b"):
        own = [u for u in uuids if u.startswith(f"{name}-")]
        assert own == [f"{name}-{n}" for n in range(40)]
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(func.count()).select_from(session_entries))).scalar()
    assert rows == 120


async def test_sdk_resume__materialises_the_stored_session_for_the_cli(
    store: Store, tmp_path: Any
) -> None:
    """The SDK's own resume path reads this adapter (what `session_store=` relies on)."""
    entries = [line(1), line(2, parentUuid="u-00001")]
    await store.sessions.append(KEY, entries)
    options = ClaudeAgentOptions(
        cwd=str(tmp_path), resume=SESSION, session_store=store.sessions, env={}
    )
    materialized = await materialize_resume_session(options)
    assert materialized is not None
    try:
        files = list((materialized.config_dir / "projects").glob(f"*/{SESSION}.jsonl"))
        assert len(files) == 1
        written = [json.loads(x) for x in files[0].read_text().splitlines()]
        assert written == entries
    finally:
        await materialized.cleanup()
