"""Dead letters, sweeper requeues and routing latency, counted as the store records them.

The handler and the sweeper of `tests/service/test_poison.py` (real store, fake clock): a
delivery that always fails is routed `MAX_ATTEMPTS` times, one requeue per sweep pass,
then dead-lettered once; a row the queue refuses is not counted as requeued.
"""

from __future__ import annotations

import contextlib

from agent_workflow.core.repo_settings import NoRepoConfigs
from agent_workflow.ingress.repo_triggers import RepoTriggers
from agent_workflow.service.handler import JobHandler
from agent_workflow.store import Store
from tests.conftest import FakeClock
from tests.ingress.helpers import TRIGGERS
from tests.service.test_poison import (
    MAX_ATTEMPTS,
    FailingFor,
    RecordingQueue,
    _stored,
    _sweeper,
)
from tests.telemetry.helpers import delta, scrape


async def test_poisoned_delivery__requeued_each_pass_then_dead_lettered_once(
    store: Store, clock: FakeClock
) -> None:
    ids = [await _stored(store, clock, n) for n in (1, 2)]
    handler = JobHandler(
        store,
        FailingFor(ids[1]),
        clock,
        triggers=RepoTriggers(TRIGGERS, NoRepoConfigs()),
        max_route_attempts=MAX_ATTEMPTS,
    )
    queue = RecordingQueue()
    sweeper = _sweeper(store, queue, clock)
    before = await scrape()
    requeued = 0
    for _ in range(MAX_ATTEMPTS + 1):
        clock.advance(1)
        queue.jobs.clear()
        requeued += (await sweeper.run_once()).deliveries
        for data in queue.jobs.values():
            with contextlib.suppress(RuntimeError):
                await handler(data)
    after = await scrape()

    assert requeued == 1 + MAX_ATTEMPTS  # both at first, then the poisoned one each pass
    assert delta(after, before, "aw_sweeper_requeues_total", kind="delivery") == requeued
    assert delta(after, before, "aw_deliveries_dead_lettered_total") == 1
    # Routing started once for the good row and MAX_ATTEMPTS times for the poisoned one;
    # each observation is the time since receipt on the fake clock (1 s, 1 s; 2 s; 3 s).
    latency = "aw_routing_latency_seconds"
    assert delta(after, before, f"{latency}_count") == 1 + MAX_ATTEMPTS
    assert delta(after, before, f"{latency}_sum") == 1 + sum(range(1, MAX_ATTEMPTS + 1))


async def test_sweep__a_row_the_queue_refuses_is_not_counted(
    store: Store, clock: FakeClock
) -> None:
    ids = [await _stored(store, clock, n) for n in (1, 2, 3)]
    queue = RecordingQueue(refuse={ids[0]})
    clock.advance(1)
    before = await scrape()
    counts = await _sweeper(store, queue, clock).run_once()
    after = await scrape()
    assert (counts.deliveries, counts.failed) == (3, 1)
    assert delta(after, before, "aw_sweeper_requeues_total", kind="delivery") == 2
