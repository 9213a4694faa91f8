"""The sweeper (DESIGN §4.5): what makes G4 hold when the queue itself gives up.

It re-enqueues deliveries accepted but not routed, phases whose lease expired,
phases pending for too long, and finished phases with effects outstanding. Every
worker may run it at once: enqueueing is deduplicated by job id and the phase
claim decides who actually works.

Each row is handled on its own: a row that cannot be enqueued is logged and skipped,
so one bad row never stops a pass (nor the start-up recovery) for the others.
Dead-lettered deliveries are not read at all (`Deliveries.unrouted`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from agent_workflow.queue.protocol import JobQueue, QueueClosed
from agent_workflow.service.jobs import phase_job, route_job
from agent_workflow.store.db import Store

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SweepCounts:
    """What one pass re-enqueued."""

    deliveries: int = 0
    phases: int = 0
    failed: int = 0  # rows that could not be re-enqueued this pass (logged)


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
        failed = 0
        for d in deliveries:
            if not await self._enqueue(
                "delivery", d.delivery_id, route_job, d.delivery_id, d.hook_id
            ):
                failed += 1
        runs = await self._store.phases.needing_work(now, pending_grace_s=grace)
        for run in runs:
            if not await self._enqueue(
                "phase",
                f"{run.task_id}/{run.phase.value}",
                phase_job,
                run.task_id,
                run.phase,
                run.fence,
            ):
                failed += 1
        counts = SweepCounts(len(deliveries), len(runs), failed)
        if deliveries or runs:
            log.info(
                "sweep.requeued",
                deliveries=counts.deliveries,
                phases=counts.phases,
                failed=counts.failed,
            )
        return counts

    async def _enqueue(
        self, kind: str, row: str, job: Callable[..., tuple[str, dict[str, Any]]], *args: Any
    ) -> bool:
        """Re-enqueue one row's job; False (logged) when that row cannot be, whatever the cause."""
        try:
            job_id, data = job(*args)
            await self._queue.enqueue(job_id, data, replace_finished=True)
        except QueueClosed:
            raise  # shutting down: the pass ends, nothing is wrong with the row
        except Exception as exc:
            log.error(
                "sweep.row_failed", kind=kind, row=row[:100], error=f"{type(exc).__name__}: {exc}"
            )
            return False
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep every interval until `stop` is set; a failing pass is logged, not fatal."""
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("sweep.failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)
