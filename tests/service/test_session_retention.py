"""Transcript retention: the sweeper's tidy pass deletes mirrored sessions idle longer than
`AW_SESSION_RETENTION_DAYS`, and none younger. Real store, SQLite and PostgreSQL."""

from __future__ import annotations

import time

from claude_agent_sdk.types import SessionKey, SessionStoreEntry

from agent_workflow.config import Settings
from agent_workflow.service.sweeper import Sweeper
from agent_workflow.store import Store
from tests.service.test_poison import RecordingQueue

DAY = 86_400.0
RETENTION_S = Settings.model_fields["session_retention_days"].default * DAY


def _sweeper(store: Store, at: float) -> Sweeper:
    return Sweeper(  # type: ignore[arg-type]
        store,
        RecordingQueue(),
        lambda: at,
        grace_s=0,
        interval_s=60,
        retention_s=30 * DAY,
        tidy_interval_s=3_600,
        janitor=None,
        daily_budget_usd=None,
        session_retention_s=RETENTION_S,
    )


async def test_tidy__idle_sessions_past_the_retention_go(store: Store) -> None:
    key: SessionKey = {"project_key": "p", "session_id": "s-1"}
    entries: list[SessionStoreEntry] = [{"type": "user", "uuid": str(n)} for n in range(3)]
    await store.sessions.append(key, entries)
    written = time.time()

    kept = await _sweeper(store, written + RETENTION_S - DAY).tidy_once()
    assert kept.session_entries == 0
    assert await store.sessions.load(key) == entries

    gone = await _sweeper(store, written + RETENTION_S + DAY).tidy_once()
    assert gone.session_entries == 3
    assert await store.sessions.load(key) is None
