"""In-process dispatcher: the embedded backend (one process, no Redis; DESIGN §6).

Each enqueued job becomes an asyncio task that waits on a semaphore, so at most
`concurrency` handlers run at once. Nothing here is durable: a job queued when
the process dies is lost, and that is fine because the inbox and `phase_runs`
rows are the durable record and start-up recovery / the sweeper re-enqueue
whatever is unfinished.

Dedup matches BullMQ's (with completed jobs removed): an id that is queued or
running is not added again; once it has finished, the same id runs again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from agent_workflow.core.errors import PhaseBusy
from agent_workflow.queue.protocol import Handler, QueueClosed, validate_job_id

log = logging.getLogger(__name__)

# How long a job that found its phase busy waits before it is tried again: a few
# seconds keeps a follow-up event prompt without spinning on a phase that runs minutes.
BUSY_RETRY_S = 5.0


class EmbeddedQueue:
    """Runs jobs in this process with bounded concurrency and in-flight dedup.

    `close()` first drops jobs that have not started (they are re-enqueued by
    recovery), then waits up to `close_timeout` seconds (None: as long as it takes)
    for running ones and cancels whatever is still running. `cancel_on_close=True`
    cancels at once. `concurrency` and `close_timeout` come from `Settings`
    (`AW_CONCURRENCY`, `AW_SHUTDOWN_GRACE_S`); there is no second default here.
    A handler exception is logged and counted; the dispatcher carries on.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        concurrency: int,
        close_timeout: float | None,
        cancel_on_close: bool = False,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._handler = handler
        self._close_timeout = close_timeout
        self._cancel_on_close = cancel_on_close
        self._semaphore = asyncio.Semaphore(concurrency)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._running: set[str] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self.completed = 0
        """Jobs whose handler returned."""
        self.failed = 0
        """Jobs whose handler raised (logged, not retried: the sweeper re-enqueues)."""
        self.busy = 0
        """Jobs that found their phase busy (retried after `BUSY_RETRY_S`)."""
        self._retries: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> frozenset[str]:
        """Ids queued or running right now."""
        return frozenset(self._tasks)

    @property
    def running(self) -> frozenset[str]:
        """Ids whose handler is running right now."""
        return frozenset(self._running)

    async def enqueue(
        self, job_id: str, data: dict[str, Any], *, replace_finished: bool = False
    ) -> None:
        """Start `data` under `job_id` unless that id is queued or running (then a no-op).

        Finished jobs are forgotten at once, so `replace_finished` changes nothing here.
        """
        validate_job_id(job_id)
        if self._closed:
            raise QueueClosed(f"queue closed; job {job_id!r} not accepted")
        if job_id in self._tasks:
            return
        self._idle.clear()
        task = asyncio.create_task(self._run(job_id, data), name=f"job:{job_id}")
        self._tasks[job_id] = task
        # `_run` forgets the id the moment the handler returns; this callback covers a
        # task cancelled before its first step, whose body (and `finally`) never runs.
        task.add_done_callback(lambda done: self._forget(job_id, done))

    async def join(self) -> None:
        """Wait until nothing is queued or running (jobs enqueued by handlers included)."""
        await self._idle.wait()

    async def close(self) -> None:
        """Refuse new jobs, drop unstarted ones, wait for (or cancel) running ones."""
        self._closed = True
        for job_id, task in list(self._tasks.items()):
            if job_id not in self._running or self._cancel_on_close:
                task.cancel()
        pending = list(self._tasks.values())
        if not pending:
            return
        _, still_running = await asyncio.wait(pending, timeout=self._close_timeout)
        for task in still_running:
            log.warning("cancelling job still running at close: %s", task.get_name())
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _again(self, job_id: str, data: dict[str, Any]) -> None:
        if self._closed:
            return  # recovery re-enqueues it at the next start
        retry = asyncio.ensure_future(self.enqueue(job_id, data))
        self._retries.add(retry)
        retry.add_done_callback(self._retries.discard)

    def _forget(self, job_id: str, task: asyncio.Future[None]) -> None:
        if self._tasks.get(job_id) is task:
            del self._tasks[job_id]
            self._running.discard(job_id)
        if not self._tasks:
            self._idle.set()

    async def _run(self, job_id: str, data: dict[str, Any]) -> None:
        this = asyncio.current_task()
        assert this is not None
        try:
            async with self._semaphore:
                self._running.add(job_id)
                await self._call(job_id, data)
        finally:
            # Forget the id before the semaphore's next holder starts, so a
            # re-enqueue right after the handler returned is never swallowed.
            self._forget(job_id, this)

    async def _call(self, job_id: str, data: dict[str, Any]) -> None:
        try:
            await self._handler(data)
        except PhaseBusy:
            # Waiting for another phase or round to settle is not a failure: try again
            # shortly (what BullMQ's retry does in distributed mode); the sweeper remains
            # the backstop if this process stops meanwhile.
            self.busy += 1
            asyncio.get_running_loop().call_later(BUSY_RETRY_S, self._again, job_id, data)
        except Exception:
            self.failed += 1
            log.exception("job %s failed", job_id)
        else:
            self.completed += 1
