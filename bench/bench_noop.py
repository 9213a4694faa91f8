"""Benchmark helper (not a test): raw BullMQ throughput for no-op jobs.

The baseline the product benchmark compares against: how many jobs per second
BullMQ itself moves through Redis when the handler does nothing. `bench_noop`
enqueues N jobs (in `addBulk` batches), then starts one worker with
concurrency C and times how long it takes to drain them. `via_runner=True`
consumes through `BullWorkerRunner` instead of a bare `Worker`, which shows
what our wrapper costs.

    python -m bench_noop --redis redis://127.0.0.1:6379 -n 5000 -c 16
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any, Final

from bullmq import Queue, Worker

from agent_workflow.queue.bullmq_backend import BullWorkerRunner

BENCH_PREFIX: Final = "awbench"
"""Keeps benchmark queues apart from real and test ones; each run uses a fresh queue name."""

ENQUEUE_BATCH: Final = 500
"""Jobs per `addBulk` call: one round trip per batch without one huge MULTI."""

JOB_OPTS: Final = {"removeOnComplete": True}
"""As the product's queue does: completed jobs vanish, so Redis stays the same size."""

DRAIN_POLL_S: Final = 0.005
"""How often `via_runner` mode checks whether the queue is empty (adds <= 5 ms to a run)."""


@dataclass(frozen=True)
class NoopBenchResult:
    """Timings of one run."""

    jobs: int
    concurrency: int
    via_runner: bool
    enqueue_s: float
    drain_s: float

    @property
    def jobs_per_s(self) -> float:
        """Drain throughput: jobs completed per second by the worker."""
        return self.jobs / self.drain_s if self.drain_s else float("inf")

    @property
    def enqueue_per_s(self) -> float:
        """Jobs added per second (batched)."""
        return self.jobs / self.enqueue_s if self.enqueue_s else float("inf")


async def bench_noop(
    redis_url: str = "redis://127.0.0.1:6379",
    *,
    jobs: int = 2_000,
    concurrency: int = 10,
    via_runner: bool = False,
    timeout_s: float = 300.0,
) -> NoopBenchResult:
    """Enqueue `jobs` no-op jobs, drain them with one worker, and report the timings."""
    name = f"bench-{uuid.uuid4().hex[:10]}"
    queue = Queue(name, {"connection": redis_url, "prefix": BENCH_PREFIX})
    try:
        started = time.perf_counter()
        for first in range(0, jobs, ENQUEUE_BATCH):
            batch = range(first, min(first + ENQUEUE_BATCH, jobs))
            await queue.addBulk(
                [
                    {"name": "noop", "data": {"n": i}, "opts": {"jobId": f"noop-{i}", **JOB_OPTS}}
                    for i in batch
                ]
            )
        enqueue_s = time.perf_counter() - started
        drain = _drain_runner if via_runner else _drain_worker
        drain_s = await asyncio.wait_for(
            drain(redis_url, name, queue, jobs, concurrency), timeout_s
        )
    finally:
        await queue.obliterate(force=True)
        await queue.close()
    return NoopBenchResult(jobs, concurrency, via_runner, enqueue_s, drain_s)


async def _drain_worker(redis_url: str, name: str, _: Any, jobs: int, concurrency: int) -> float:
    done = asyncio.Event()
    completed = 0

    async def noop(job: Any, token: str) -> None:
        return None

    def on_completed(*_: Any) -> None:
        nonlocal completed
        completed += 1
        if completed >= jobs:
            done.set()

    opts = {
        "connection": redis_url,
        "prefix": BENCH_PREFIX,
        "concurrency": concurrency,
        "autorun": False,
    }
    worker = Worker(name, noop, opts)
    worker.on("completed", on_completed)
    started = time.perf_counter()
    task = asyncio.create_task(worker.run())
    await done.wait()
    elapsed = time.perf_counter() - started
    await worker.close()
    await task
    return elapsed


async def _drain_runner(
    redis_url: str, name: str, queue: Any, jobs: int, concurrency: int
) -> float:
    async def noop(data: dict[str, Any]) -> None:
        return None

    runner = BullWorkerRunner(
        redis_url,
        name,
        noop,
        prefix=BENCH_PREFIX,
        concurrency=concurrency,
        lock_duration_ms=30_000,  # BullMQ's defaults: no job stalls in a drain
        stalled_interval_ms=30_000,
        max_stalled_count=1,
        grace_s=5.0,
        worker_name="bench-noop",
    )
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(runner.run(stop))
    while True:
        # Every job was added before the runner started: an empty queue means drained.
        if await queue.getJobCountByTypes("waiting", "active", "delayed") == 0:
            break
        await asyncio.sleep(DRAIN_POLL_S)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    return elapsed


def main(argv: list[str] | None = None) -> None:
    """Command line: print one line per run."""
    p = argparse.ArgumentParser(description="Raw BullMQ no-op throughput")
    p.add_argument("--redis", default="redis://127.0.0.1:6379")
    p.add_argument("-n", "--jobs", type=int, default=2_000)
    p.add_argument("-c", "--concurrency", type=int, default=10)
    p.add_argument("--via-runner", action="store_true", help="consume via BullWorkerRunner")
    args = p.parse_args(argv)
    result = asyncio.run(
        bench_noop(
            args.redis, jobs=args.jobs, concurrency=args.concurrency, via_runner=args.via_runner
        )
    )
    print(
        f"jobs={result.jobs} concurrency={result.concurrency} via_runner={result.via_runner} "
        f"enqueue={result.enqueue_per_s:.0f}/s drain={result.jobs_per_s:.0f}/s "
        f"({result.drain_s:.2f}s)"
    )


if __name__ == "__main__":
    main()
