"""BullMQ backend (the `bullmq` PyPI package over Redis >= 6.2; DESIGN §6).

`aw serve` enqueues through `BullQueue`; any number of `aw worker` processes
consume through `BullWorkerRunner`. What BullMQ 3.4 (Python) actually does, as
read from its source and checked by tests/queue against a real Redis:

* **jobId dedup covers finished jobs too.** `Queue.add` with a `jobId` whose job
  hash still exists, in *any* state (waiting, active, completed, failed),
  stores nothing and returns the id (event `duplicated`). So a retained
  finished job silently swallows a re-enqueue. Our policy: completed jobs are
  removed at once (`remove_on_complete=True`), making dedup cover only
  queued/active jobs, like the embedded queue; failed jobs are kept for
  inspection (`KEEP_FAILED`), and `enqueue(..., replace_finished=True)`
  removes a completed/failed job before adding, which is what the sweeper uses.
  (`Job.retry` is no substitute: it keeps the old stalled counter `stc`, so a
  job failed for stalling would fail again on its first stall.)
* **Locks and renewal.** Taking a job sets `<job>:lock` with PX `lockDuration`.
  The worker's `LockManager` task wakes every `lockDuration/4` ms and renews
  the locks of its running jobs (`extendLocks`, which also clears them from the
  `stalled` set) when they are older than `lockDuration/4`. It is an asyncio
  task: **a handler that blocks the event loop loses the lock** — past
  `lockDuration/2` it may, past `lockDuration` it surely does — so blocking
  work belongs in threads or subprocesses. A worker that lost its lock cannot complete the job
  (`moveToFinished` checks the token: "Missing lock" / "Lock mismatch"), but
  its handler keeps running — the database fence (G5) stops its writes.
* **Stalled jobs.** Every worker runs a stalled check each `stalledInterval`
  (throttled globally by a `stalled-check` key): jobs found in `active` without
  a lock since the previous check go back to `wait` and their `stc` is bumped.
  A SIGKILLed worker's job therefore returns after its lock expires plus one
  or two stalled intervals — and only while some worker is running.
* **maxStalledCount.** When `stc` exceeds `maxStalledCount` the check still
  moves the job to wait but marks it (`defa` = "job stalled more than allowable
  limit"); the next worker to take it fails it at once with an
  `UnrecoverableError`, without calling the handler, whatever `attempts` says.
  Only the sweeper (DESIGN §4.5) makes progress after that.
* **Graceful close.** `Worker.close()` stops fetching and waits for running
  jobs without a deadline. `BullWorkerRunner` adds the deadline: after
  `grace_s` it cancels the handlers still running and *releases* their jobs
  (`Job.moveToDelayed(now)`, token-checked, no attempt counted, no stall
  counted), so another worker takes them at once instead of after a lock
  expiry. A job fetched in the instant `close()` starts is released too; in
  the rare case the release cannot reach Redis, the job comes back as stalled.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from typing import Any, Final, NoReturn

import bullmq.utils
import bullmq.worker
from bullmq import Job, Queue, Worker
from bullmq.custom_errors import DelayedError

from agent_workflow.core.errors import AgentWorkflowError
from agent_workflow.queue.protocol import Handler, QueueClosed, validate_job_id

log = logging.getLogger(__name__)


class _TracebackToLog:
    """`traceback` as bullmq sees it, except that `print_exc` logs to the `bullmq` logger.

    bullmq prints some errors of its worker loop with `traceback.print_exc()`
    straight to stderr; this way they come out as log records like every other.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(traceback, name)

    @staticmethod
    def print_exc(*_: Any, **__: Any) -> None:
        logging.getLogger("bullmq").error("bullmq worker error", exc_info=True)


for _module in (bullmq.worker, bullmq.utils):
    if getattr(_module, "traceback", None) is traceback:
        _module.traceback = _TracebackToLog()

DEFAULT_ATTEMPTS: Final = 3
"""A handler error (DB briefly unavailable) is retried twice; the sweeper covers the rest."""

DEFAULT_BACKOFF_MS: Final = 2_000
"""First retry after 2 s, then 4 s (exponential): long enough for a database failover blip."""

KEEP_FAILED: Final[dict[str, int]] = {"age": 7 * 24 * 3600, "count": 10_000}
"""Failed jobs stay a week (at most 10k) for operators; `replace_finished` overrides them."""

FINISHED_STATES: Final = frozenset({"completed", "failed"})
"""States in which a kept job would absorb a re-enqueue of its id."""

FORCE_CLOSE_AFTER_S: Final = 5.0
"""After the grace, how long cancelled handlers get to release their jobs before a forced close."""


class WorkerCrashed(AgentWorkflowError):
    """The BullMQ worker loop ended without being asked to stop (the process should exit non-zero)."""


class HandlerCancelled(AgentWorkflowError):
    """A handler raised `CancelledError` on its own; the attempt counts as failed."""


def _job_name(data: dict[str, Any]) -> str:
    kind = data.get("kind")
    return kind if isinstance(kind, str) and kind else "job"


class BullQueue:
    """The producer side: `JobQueue` over a BullMQ `Queue`.

    `jobId` is the caller's job id (validated by `validate_job_id`: no `:`, not
    all digits), so a second enqueue of an id that is waiting, delayed or active
    is a no-op. See the module docstring for the retention policy and
    `replace_finished`.
    """

    def __init__(
        self,
        redis_url: str,
        name: str,
        prefix: str,
        *,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff_ms: int = DEFAULT_BACKOFF_MS,
        remove_on_complete: bool | int | dict[str, int] = True,
        remove_on_fail: bool | int | dict[str, int] = KEEP_FAILED,
    ) -> None:
        self.name = name
        self.prefix = prefix
        self._queue = Queue(name, {"connection": redis_url, "prefix": prefix})
        self._job_opts: dict[str, Any] = {
            "attempts": attempts,
            "backoff": {"type": "exponential", "delay": backoff_ms},
            "removeOnComplete": remove_on_complete,
            "removeOnFail": remove_on_fail,
        }
        self._closed = False

    async def enqueue(
        self, job_id: str, data: dict[str, Any], *, replace_finished: bool = False
    ) -> None:
        """Add `data` as job `job_id` unless that id is queued or active (then a no-op).

        With `replace_finished=True` a completed or failed job kept under the id
        is removed first, so the work runs again. Not atomic: two concurrent
        replacing calls may both add, which at-least-once handlers tolerate; a
        job that finishes between the state check and the add still absorbs it
        (the sweeper's next pass catches that).
        """
        validate_job_id(job_id)
        if self._closed:
            raise QueueClosed(f"queue {self.name!r} closed; job {job_id!r} not accepted")
        if replace_finished and await self.state(job_id) in FINISHED_STATES:
            # removeJob refuses (returns 0) if the job is locked, i.e. active again.
            await self._queue.remove(job_id)
        await self._queue.add(_job_name(data), data, {**self._job_opts, "jobId": job_id})

    async def state(self, job_id: str) -> str | None:
        """BullMQ state of `job_id` (`waiting`, `active`, `delayed`, `failed`, …) or None if absent."""
        state = await self._queue.getJobState(job_id)
        return None if state in (None, "unknown") else str(state)

    async def job_info(self, job_id: str) -> dict[str, Any] | None:
        """Diagnostics of one job: state, attempts made, stalled counter, failed reason."""
        # The state first: a job read before it failed would carry no failed reason yet,
        # beside a state read after (BullMQ fails a job atomically, in one script).
        state = await self.state(job_id)
        job = await self._queue.getJob(job_id)
        if job is None:
            return None
        return {
            "state": state,
            "attempts_made": job.attemptsMade,
            "stalled_count": job.stalledCounter,
            "failed_reason": job.failedReason,
            "data": job.data,
        }

    async def counts(self) -> dict[str, int]:
        """Number of jobs per BullMQ state (`waiting`, `active`, `failed`, …)."""
        counts: dict[str, int] = await self._queue.getJobCounts()
        return counts

    async def obliterate(self) -> None:
        """Delete the queue and every job in it (tests and benchmarks only)."""
        await self._queue.obliterate(force=True)

    async def close(self) -> None:
        """Refuse further enqueues and close the Redis connection."""
        if self._closed:
            return
        self._closed = True
        await self._queue.close()


class BullWorkerRunner:
    """The consumer side: runs `handler` on jobs of queue `name` until told to stop.

    `await run(stop)` returns after `stop` is set and shutdown is done: no new
    jobs are taken, running handlers get `grace_s` seconds, then are cancelled
    and their jobs released to the queue (see the module docstring). Handler
    exceptions fail the attempt (retried per the job's `attempts`). Every knob is a
    required argument fed from `Settings` (`AW_CONCURRENCY`, `AW_LOCK_DURATION_MS`,
    `AW_STALLED_INTERVAL_MS`, `AW_MAX_STALLED_COUNT`, `AW_SHUTDOWN_GRACE_S`, `AW_OWNER`).
    """

    def __init__(
        self,
        redis_url: str,
        name: str,
        handler: Handler,
        *,
        prefix: str,
        concurrency: int,
        lock_duration_ms: int,
        stalled_interval_ms: int,
        max_stalled_count: int,
        grace_s: float,
        worker_name: str,
    ) -> None:
        self.name = name
        self.grace_s = grace_s
        self._handler = handler
        self._opts: dict[str, Any] = {
            "connection": redis_url,
            "prefix": prefix,
            "concurrency": concurrency,
            "lockDuration": lock_duration_ms,
            "stalledInterval": stalled_interval_ms,
            "maxStalledCount": max_stalled_count,
            "autorun": False,
            "name": worker_name,
        }
        self._stopping = False
        self._handlers: set[asyncio.Task[None]] = set()
        self.completed = 0
        """Jobs whose handler returned."""
        self.failed = 0
        """Handler attempts that raised."""
        self.released = 0
        """Jobs handed back to the queue on shutdown."""

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then shut down gracefully; raises `WorkerCrashed` otherwise."""
        self._stopping = False
        worker = Worker(self.name, self._process, self._opts)
        self._subscribe(worker)
        run_task = asyncio.create_task(worker.run(), name=f"bullmq-worker:{self.name}")
        stop_task = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({run_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_task.cancel()
            await self._shutdown(worker, run_task)
        if not stop.is_set():
            raise WorkerCrashed(f"worker loop for queue {self.name!r} ended by itself")

    async def _shutdown(self, worker: Any, run_task: asyncio.Task[Any]) -> None:
        self._stopping = True
        close_task = asyncio.create_task(worker.close())
        if self._handlers:
            _, late = await asyncio.wait(set(self._handlers), timeout=self.grace_s)
            for task in late:
                task.cancel()  # `_process` releases the job
        done, _ = await asyncio.wait({close_task}, timeout=FORCE_CLOSE_AFTER_S)
        if not done:
            log.error("queue %s: handlers ignored cancellation; forcing close", self.name)
            await worker.close(force=True)
            await close_task
        done, _ = await asyncio.wait({run_task}, timeout=FORCE_CLOSE_AFTER_S)
        if not done:
            run_task.cancel()
        await asyncio.gather(run_task, return_exceptions=True)

    async def _process(self, job: Job, token: str) -> None:
        """BullMQ processor: run the handler as a task we can cancel, release on shutdown."""
        if self._stopping:
            await self._release(job, token)
        handler_task = asyncio.create_task(self._invoke(job.data), name=f"handler:{job.id}")
        self._handlers.add(handler_task)
        try:
            await handler_task
        except asyncio.CancelledError as cancelled:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this processor was cancelled (forced close): BullMQ's business
            if self._stopping:
                await self._release(job, token)  # our grace deadline cancelled the handler
            # The handler cancelled itself: a failure, never a CancelledError escaping
            # into BullMQ's loop (which only survives `Exception`s).
            self.failed += 1
            raise HandlerCancelled(f"handler of job {job.id} was cancelled") from cancelled
        except Exception:
            self.failed += 1
            log.exception("queue %s: job %s failed", self.name, job.id)
            raise
        finally:
            self._handlers.discard(handler_task)
        self.completed += 1

    async def _invoke(self, data: dict[str, Any]) -> None:
        await self._handler(data)

    async def _release(self, job: Job, token: str) -> NoReturn:
        """Hand the job back for immediate re-delivery; raises `DelayedError` as BullMQ requires."""
        await job.moveToDelayed(int(time.time() * 1000), token)
        self.released += 1
        log.info("queue %s: released job %s on shutdown", self.name, job.id)
        raise DelayedError()

    def _subscribe(self, worker: Any) -> None:
        def on_error(err: Exception, *_: Any) -> None:
            log.warning("queue %s: worker error: %s", self.name, err)

        def on_stalled(job_id: str, *_: Any) -> None:
            log.warning("queue %s: job %s stalled, moved back to wait", self.name, job_id)

        def on_lock_lost(job_ids: list[str], *_: Any) -> None:
            log.error(
                "queue %s: lost the lock of jobs %s (event loop blocked?)", self.name, job_ids
            )

        worker.on("error", on_error)
        worker.on("stalled", on_stalled)
        worker.on("lockRenewalFailed", on_lock_lost)
