"""The sweeper (DESIGN §4.5): what makes G4 hold when the queue itself gives up.

It re-enqueues deliveries accepted but not routed, phases whose lease expired,
phases pending for too long, and finished phases with effects outstanding. Every
worker may run it at once: enqueueing is deduplicated by job id and the phase
claim decides who actually works.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from agent_workflow.queue.protocol import JobQueue
from agent_workflow.service.jobs import phase_job, route_job
from agent_workflow.store.db import Store

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SweepCounts:
    """What one pass re-enqueued."""

    deliveries: int = 0
    phases: int = 0


class Sweeper:
    """Re-dispatches unfinished work found in the database."""

    def __init__(
        self,
        store: Store,
        queue: JobQueue,
        clock: Callable[[], float],
        *,
        grace_s: float,
        interval_s: float,
    ) -> None:
        self._store = store
        self._queue = queue
        self._clock = clock
        self._grace = grace_s
        self._interval = interval_s

    async def run_once(self, *, grace_s: float | None = None) -> SweepCounts:
        """One pass. `grace_s=0` at start-up recovers everything unfinished at once."""
        grace = self._grace if grace_s is None else grace_s
        now = self._clock()
        deliveries = await self._store.deliveries.unrouted(received_before=now - grace)
        for d in deliveries:
            job_id, data = route_job(d.delivery_id, d.hook_id)
            await self._queue.enqueue(job_id, data, replace_finished=True)
        runs = await self._store.phases.needing_work(now, pending_grace_s=grace)
        for run in runs:
            job_id, data = phase_job(run.task_id, run.phase, run.fence)
            await self._queue.enqueue(job_id, data, replace_finished=True)
        counts = SweepCounts(len(deliveries), len(runs))
        if deliveries or runs:
            log.info("sweep.requeued", deliveries=counts.deliveries, phases=counts.phases)
        return counts

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep every interval until `stop` is set; a failing pass is logged, not fatal."""
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("sweep.failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)
