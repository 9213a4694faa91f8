"""Deliveries retention (issue 10 §8): the sweeper deletes routed and dead-lettered
deliveries older than `AW_DELIVERY_RETENTION_DAYS`, in bounded batches; an unrouted
delivery with work to do stays, whatever its age. Real store, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from agent_workflow.config import Settings
from agent_workflow.core.model import Event, Intent
from agent_workflow.service import sweeper as sweeper_module
from agent_workflow.service.sweeper import Sweeper, TidyCounts
from agent_workflow.store import Store
from tests.conftest import FakeClock
from tests.service.test_handler import HOOK
from tests.service.test_poison import RecordingQueue

DAY = 86_400.0
RETENTION_S = Settings.model_fields["delivery_retention_days"].default * DAY


def _sweeper(store: Store, clock: FakeClock) -> Sweeper:
    return Sweeper(  # type: ignore[arg-type]
        store,
        RecordingQueue(),
        clock,
        grace_s=0,
        interval_s=60,
        retention_s=RETENTION_S,
        tidy_interval_s=3_600,
        janitor=None,
        daily_budget_usd=None,
    )


async def _record(store: Store, delivery: str, now: float) -> bool:
    event = Event(delivery, Intent.START_PLAN, "octo/demo", 7, "alice")
    return await store.deliveries.record(
        delivery_id=delivery,
        hook_id=HOOK,
        event="issues",
        action="labeled",
        payload={"n": delivery},
        parsed=event,
        now=now,
        body_sha256=f"{delivery:0>64}"[-64:],
    )


async def _kept(store: Store, *deliveries: str) -> set[str]:
    return {d for d in deliveries if await store.deliveries.get(d, HOOK) is not None}


async def test_tidy__old_settled_deliveries_go_young_and_unrouted_stay(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Old routed and dead-lettered rows are deleted (two per statement here, so the
    pass takes several batches); an old unrouted row (the sweeper still routes it) and
    every young row stay; a retained delivery is still a duplicate, by id and by body."""
    monkeypatch.setattr(sweeper_module, "RETENTION_BATCH", 2)
    old_routed = [f"old-routed-{n}" for n in range(5)]
    for d in [*old_routed, "old-dead", "old-unrouted", "young-unrouted", "young-routed"]:
        assert await _record(store, d, clock() if d.startswith("old") else clock() + 20 * DAY)
    for d in old_routed:
        await store.deliveries.mark_routed(d, HOOK, clock())
    assert await store.deliveries.note_failure(
        "old-dead", HOOK, "boom", now=clock(), max_attempts=1
    )
    await store.deliveries.mark_routed("young-routed", HOOK, clock() + 20 * DAY)
    clock.advance(RETENTION_S + 1)

    counts = await _sweeper(store, clock).tidy_once()

    assert counts == TidyCounts(deliveries=6, worktrees=0)
    everything = [*old_routed, "old-dead", "old-unrouted", "young-unrouted", "young-routed"]
    assert await _kept(store, *everything) == {"old-unrouted", "young-unrouted", "young-routed"}
    # The unrouted one is still found by the sweeper, and retained rows still dedupe.
    assert [d.delivery_id for d in await store.deliveries.unrouted(clock())] == [
        "old-unrouted",
        "young-unrouted",
    ]
    assert await _record(store, "young-routed", clock()) is False  # same delivery id
    event = Event("new-id", Intent.START_PLAN, "octo/demo", 7, "alice")
    assert (
        await store.deliveries.record(
            delivery_id="new-id",
            hook_id=HOOK,
            event="issues",
            action="labeled",
            payload={},
            parsed=event,
            now=clock(),
            body_sha256=f"{'young-routed':0>64}",
        )
        is False  # the same body under a new delivery id
    )
    assert await _sweeper(store, clock).tidy_once() == TidyCounts()  # nothing more to do


async def test_tidy__a_pass_deletes_a_bounded_number(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long-grown table is worked off over several passes: each deletes at most
    `RETENTION_MAX_BATCHES` statements of `RETENTION_BATCH` rows."""
    monkeypatch.setattr(sweeper_module, "RETENTION_BATCH", 2)
    monkeypatch.setattr(sweeper_module, "RETENTION_MAX_BATCHES", 2)
    for n in range(7):
        assert await _record(store, f"d-{n}", clock())
        await store.deliveries.mark_routed(f"d-{n}", HOOK, clock())
    clock.advance(RETENTION_S + 1)
    sweeper = _sweeper(store, clock)

    assert [(await sweeper.tidy_once()).deliveries for _ in range(3)] == [4, 3, 0]


class CountingJanitor:
    """Stands in for the worktree janitor: counts its passes."""

    def __init__(self) -> None:
        self.passes = 0

    async def run_once(self) -> int:
        self.passes += 1
        return 1


async def test_run__tidies_at_start_then_every_tidy_interval(
    store: Store, clock: FakeClock
) -> None:
    """The sweeper's loop tidies (deliveries and the janitor) once at start, then only
    when the tidy interval has passed, however often it sweeps."""
    janitor = CountingJanitor()
    sweeper = Sweeper(  # type: ignore[arg-type]
        store,
        RecordingQueue(),
        clock,
        grace_s=0,
        interval_s=0.001,
        retention_s=RETENTION_S,
        tidy_interval_s=3_600,
        janitor=janitor,  # type: ignore[arg-type]
        daily_budget_usd=None,
    )
    stop = asyncio.Event()
    loop = asyncio.create_task(sweeper.run(stop))
    await asyncio.sleep(0.05)
    assert janitor.passes == 1
    clock.advance(3_600)
    await asyncio.sleep(0.05)
    assert janitor.passes == 2
    stop.set()
    await loop
