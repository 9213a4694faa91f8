"""Nothing poisons the pipeline: a bad row is handled on its own, and a row that keeps
failing to route is dead-lettered (issue 10 §5). Real store, SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from sqlalchemy import insert

from agent_workflow.core.model import Event
from agent_workflow.core.repo_settings import NoRepoConfigs
from agent_workflow.core.routed import Action, Routed
from agent_workflow.ingress.repo_triggers import RepoTriggers
from agent_workflow.queue.protocol import validate_job_id
from agent_workflow.service.handler import JobHandler
from agent_workflow.service.jobs import route_job
from agent_workflow.service.sweeper import Sweeper
from agent_workflow.status import collect_dead_letters
from agent_workflow.store import Store
from agent_workflow.store.deliveries import event_to_json
from agent_workflow.store.schema import deliveries
from tests.conftest import FakeClock
from tests.ingress.helpers import TRIGGERS, labeled
from tests.service.test_handler import HOOK, RecordingRouter, parsed_event, store_delivery

MAX_ATTEMPTS = 3


class RecordingQueue:
    """Records enqueued jobs; validates ids as every backend does; can refuse some."""

    def __init__(self, refuse: set[str] | None = None) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.refuse = refuse or set()

    async def enqueue(
        self, job_id: str, data: dict[str, Any], *, replace_finished: bool = False
    ) -> None:
        validate_job_id(job_id)
        if data.get("delivery_id") in self.refuse:
            raise ConnectionError("queue refused this one")
        self.jobs[job_id] = data

    async def close(self) -> None:
        return None


class FailingFor(RecordingRouter):
    """Fails every event of one delivery, routes the others."""

    def __init__(self, poisoned: str) -> None:
        super().__init__()
        self.poisoned = poisoned

    async def route(self, event: Event, state: object = None) -> Routed:
        self.routed.append(event)
        if event.delivery_id == self.poisoned:
            raise RuntimeError("this delivery always fails")
        return Routed(Action.NOOP, "recorded")


def _sweeper(store: Store, queue: RecordingQueue, clock: FakeClock) -> Sweeper:
    return Sweeper(  # type: ignore[arg-type]
        store,
        queue,
        clock,
        grace_s=0,
        interval_s=60,
        retention_s=30 * 86_400,
        tidy_interval_s=3_600,
        janitor=None,
        daily_budget_usd=None,
    )


async def _stored(store: Store, clock: FakeClock, number: int) -> str:
    event = parsed_event("issues", labeled("agent", number=number), TRIGGERS)
    return await store_delivery(store, "issues", labeled("agent", number=number), event, clock.now)


async def test_sweep__one_row_cannot_be_enqueued__the_others_still_are(
    store: Store, clock: FakeClock
) -> None:
    ids = [await _stored(store, clock, n) for n in (1, 2, 3)]
    queue = RecordingQueue(refuse={ids[0]})
    clock.advance(1)

    counts = await _sweeper(store, queue, clock).run_once()

    assert sorted(d["delivery_id"] for d in queue.jobs.values()) == sorted(ids[1:])
    assert (counts.deliveries, counts.failed) == (3, 1)


async def test_sweep__legacy_row_with_a_195_character_id__enqueued_under_a_derived_id(
    store: Store, clock: FakeClock
) -> None:
    """A row stored before the ingress refused long ids: its job id is derived, not concatenated."""
    event = parsed_event("issues", labeled("agent"), TRIGGERS)
    long_id = "a" * 195
    async with store.engine.begin() as conn:
        await conn.execute(
            insert(deliveries).values(
                delivery_id=long_id,
                hook_id="123456789",
                event="issues",
                action="labeled",
                payload={},
                parsed=event_to_json(event),
                received_at=clock.now,
            )
        )
    other = await _stored(store, clock, 2)
    queue = RecordingQueue()
    clock.advance(1)

    counts = await _sweeper(store, queue, clock).run_once()

    assert counts.failed == 0
    assert sorted(d["delivery_id"] for d in queue.jobs.values()) == sorted([long_id, other])
    job_id, _ = route_job(long_id, "123456789")
    assert len(job_id) <= 66
    assert job_id in queue.jobs


async def test_route_keeps_failing__dead_lettered_after_n_tries_others_complete(
    store: Store, clock: FakeClock
) -> None:
    ids = [await _stored(store, clock, n) for n in (1, 2, 3)]
    poisoned = ids[1]
    router = FailingFor(poisoned)
    handler = JobHandler(
        store,
        router,
        clock,
        triggers=RepoTriggers(TRIGGERS, NoRepoConfigs()),
        max_route_attempts=MAX_ATTEMPTS,
    )
    queue = RecordingQueue()
    sweeper = _sweeper(store, queue, clock)

    passes = 0
    while passes < 10:  # what the sweeper would do, pass after pass
        passes += 1
        clock.advance(1)
        queue.jobs.clear()
        await sweeper.run_once()
        if not queue.jobs:
            break
        for data in queue.jobs.values():
            with contextlib.suppress(RuntimeError):
                await handler(data)

    attempts = [e.delivery_id for e in router.routed].count(poisoned)
    assert attempts == MAX_ATTEMPTS, "routed again after it was dead-lettered"
    assert passes == MAX_ATTEMPTS + 1  # the pass after the last failure finds nothing
    for delivery in (ids[0], ids[2]):
        row = await store.deliveries.get(delivery, HOOK)
        assert row is not None
        assert row.routed_at is not None
    dead = await store.deliveries.get(poisoned, HOOK)
    assert dead is not None
    assert (dead.routed_at, dead.route_attempts) == (None, MAX_ATTEMPTS)
    assert dead.dead_at is not None
    assert await store.deliveries.unrouted(float("inf")) == []

    # A job for it that still arrives (a queue retry) changes nothing.
    _, job = route_job(poisoned, HOOK)
    await handler(job)
    assert [e.delivery_id for e in router.routed].count(poisoned) == MAX_ATTEMPTS

    status = await collect_dead_letters(store)
    assert status["count"] == 1
    assert [(d["delivery_id"], d["attempts"]) for d in status["latest"]] == [
        (poisoned, MAX_ATTEMPTS)
    ]
    assert "this delivery always fails" in status["latest"][0]["last_error"]


@pytest.mark.parametrize("attempts", [1, 2])
async def test_note_failure__below_the_cap__not_dead(
    store: Store, clock: FakeClock, attempts: int
) -> None:
    delivery = await _stored(store, clock, 1)
    dead = [
        await store.deliveries.note_failure(delivery, HOOK, "x", now=clock.now, max_attempts=3)
        for _ in range(attempts)
    ]
    assert dead == [False] * attempts
