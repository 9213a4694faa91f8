"""The sweeper (DESIGN §4.5): what makes G4 hold when the queue itself gives up.

It re-enqueues deliveries accepted but not routed, phases whose lease expired,
phases pending for too long, and finished phases with effects outstanding. Every
worker may run it at once: enqueueing is deduplicated by job id and the phase
claim decides who actually works.

Each row is handled on its own: a row that cannot be enqueued is logged and skipped,
so one bad row never stops a pass (nor the start-up recovery) for the others.
Dead-lettered deliveries are not read at all (`Deliveries.unrouted`).

While the daily budget (`AW_DAILY_BUDGET_USD`) is spent, claimable phases are left
where they are (pending, visible in `aw status`): dispatching them would only find
the budget spent again. Finished phases' outstanding effects are still dispatched
(they spend nothing). The first pass after 00:00 UTC dispatches the waiting phases.

It also bounds what grows (`tidy_once`, every `AW_RETENTION_INTERVAL_S`, first at
start): routed and dead-lettered deliveries older than `AW_DELIVERY_RETENTION_DAYS`
are deleted in bounded batches (an unrouted live one never is), and the worktree
janitor removes this machine's leftover worktrees (`service.janitor`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from agent_workflow.core.limits import budget_reached
from agent_workflow.core.recovery import RecoveryPoint, recovery_point
from agent_workflow.queue.protocol import JobQueue, QueueClosed
from agent_workflow.service.janitor import WorktreeJanitor
from agent_workflow.service.jobs import phase_job, route_job
from agent_workflow.store.db import Store
from agent_workflow.telemetry import recorder

log = structlog.get_logger(__name__)

# Deliveries deleted per statement: a short transaction, so routing never waits long on it.
RETENTION_BATCH = 1_000
# Statements per tidy pass: 100,000 deliveries an interval is far beyond any webhook rate,
# yet a first pass over a long-grown table stops and leaves the rest for the next one.
RETENTION_MAX_BATCHES = 100
# Sessions whose mirrored transcripts one statement deletes (each is up to a few thousand lines).
SESSION_RETENTION_BATCH = 50


@dataclass(frozen=True)
class SweepCounts:
    """What one pass re-enqueued."""

    deliveries: int = 0
    phases: int = 0
    failed: int = 0  # rows that could not be re-enqueued this pass (logged)


@dataclass(frozen=True)
class TidyCounts:
    """What one tidy pass removed."""

    deliveries: int = 0  # routed or dead-lettered deliveries past the retention
    worktrees: int = 0  # task directories the janitor removed
    session_entries: int = 0  # mirrored transcript lines of sessions idle past their retention


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
        retention_s: float,
        tidy_interval_s: float,
        janitor: WorktreeJanitor | None,
        daily_budget_usd: float | None,
        session_retention_s: float | None = None,
    ) -> None:
        self._store = store
        self._queue = queue
        self._clock = clock
        self._grace = grace_s
        self._interval = interval_s
        self._retention = retention_s
        self._tidy_interval = tidy_interval_s
        self._janitor = janitor
        self._daily_budget = daily_budget_usd
        self._session_retention = session_retention_s

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
        failed_deliveries = failed
        runs = await self._store.phases.needing_work(now, pending_grace_s=grace)
        if runs and await budget_reached(self._store.usage, self._daily_budget, now):
            runs = [r for r in runs if recovery_point(r, now) is not RecoveryPoint.CLAIMABLE]
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
        recorder.requeued("delivery", len(deliveries) - failed_deliveries)
        recorder.requeued("phase", len(runs) - (failed - failed_deliveries))
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

    async def tidy_once(self) -> TidyCounts:
        """Delete old settled deliveries (bounded batches), then run the worktree janitor."""
        cutoff = self._clock() - self._retention
        deleted = 0
        for _ in range(RETENTION_MAX_BATCHES):
            batch = await self._store.deliveries.delete_settled(cutoff, RETENTION_BATCH)
            deleted += batch
            if batch < RETENTION_BATCH:
                break
        worktrees = await self._janitor.run_once() if self._janitor is not None else 0
        for _ in range(RETENTION_MAX_BATCHES):  # released agent slots: history, kept as long
            if await self._store.slots.prune(cutoff, RETENTION_BATCH) < RETENTION_BATCH:
                break
        lines = await self._tidy_sessions()
        if deleted or worktrees or lines:
            log.info("sweep.tidied", deliveries=deleted, worktrees=worktrees, session_entries=lines)
        return TidyCounts(deleted, worktrees, lines)

    async def _tidy_sessions(self) -> int:
        """Delete mirrored transcripts of sessions idle past `session_retention_s`."""
        if self._session_retention is None:
            return 0
        cutoff = self._clock() - self._session_retention
        lines = 0
        for _ in range(RETENTION_MAX_BATCHES):
            batch = await self._store.sessions.delete_idle(cutoff, SESSION_RETENTION_BATCH)
            lines += batch
            if batch == 0:
                break
        return lines

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep every interval (and tidy every tidy interval, first at once) until `stop`
        is set; a failing pass is logged, not fatal."""
        next_tidy = self._clock()
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("sweep.failed")
            if self._clock() >= next_tidy:
                next_tidy = self._clock() + self._tidy_interval
                try:
                    await self.tidy_once()
                except Exception:
                    log.exception("sweep.tidy_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)
