"""BullMQ backend against the real Redis server: dedup, retention, stalls, graceful stop.

Process tests run `_demo_worker` processes (lock 2 s, stalled check 1 s) and
assert on what they recorded — who started and finished which job — not on
timings.
"""

from __future__ import annotations

import asyncio
import inspect
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from agent_workflow.queue import InvalidJobId, JobQueue
from agent_workflow.queue.bullmq_backend import BullQueue, BullWorkerRunner
from tests.queue.conftest import PREFIX, WAIT_S, WorkerProcesses

pytestmark = pytest.mark.redis

STALLED = "job stalled more than allowable limit"  # BullMQ's failedReason after maxStalledCount


def starts(lines: list[str], job: str) -> list[str]:
    """Pids that started `job`, in order."""
    return [line.split()[2] for line in lines if line.startswith(f"start {job} ")]


def ends(lines: list[str], job: str) -> list[str]:
    """Pids that finished `job`, in order."""
    return [line.split()[2] for line in lines if line.startswith(f"end {job} ")]


def started(job: str, pid: int) -> Callable[[list[str]], bool]:
    """Predicate: process `pid` has started `job`."""
    return lambda lines: str(pid) in starts(lines, job)


async def eventually(check: Callable[[], Any]) -> Any:
    """Call `check()` (awaiting it if it is a coroutine) until it is truthy; at most WAIT_S."""
    async with asyncio.timeout(WAIT_S):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(0.05)


@asynccontextmanager
async def in_process_worker(
    redis_url: str, name: str, handler: Any, **kwargs: Any
) -> AsyncIterator[BullWorkerRunner]:
    """A BullWorkerRunner in this event loop (BullMQ's own defaults unless overridden)."""
    knobs: dict[str, Any] = {
        "concurrency": 4,
        "lock_duration_ms": 30_000,
        "stalled_interval_ms": 30_000,
        "max_stalled_count": 1,
        "grace_s": 25.0,
        "worker_name": "in-process-worker",
        **kwargs,
    }
    runner = BullWorkerRunner(redis_url, name, handler, prefix=PREFIX, **knobs)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        yield runner
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT_S)


async def test_bull_queue__satisfies_the_protocol(bull_queue: BullQueue) -> None:
    assert isinstance(bull_queue, JobQueue)


@pytest.mark.parametrize("bad", ["a:b", "123", ""])
async def test_bull_queue__refuses_ids_bullmq_cannot_take(bull_queue: BullQueue, bad: str) -> None:
    with pytest.raises(InvalidJobId):
        await bull_queue.enqueue(bad, {"kind": "route"})
    assert sum((await bull_queue.counts()).values()) == 0


async def test_bull_queue__same_id_twice_is_one_job(
    bull_queue: BullQueue, redis_url: str, queue_name: str
) -> None:
    await bull_queue.enqueue("delivery-1", {"kind": "route", "n": 1})
    await bull_queue.enqueue("delivery-1", {"kind": "route", "n": 2})
    assert (await bull_queue.counts())["waiting"] == 1
    seen: list[dict[str, Any]] = []

    async def handler(data: dict[str, Any]) -> None:
        seen.append(data)

    async with in_process_worker(redis_url, queue_name, handler) as runner:
        await eventually(lambda: runner.completed == 1)
        await asyncio.sleep(0.3)  # room for a (wrong) second delivery
    assert seen == [{"kind": "route", "n": 1}]
    assert await bull_queue.state("delivery-1") is None  # completed jobs are removed


async def test_bull_queue__racing_producers_add_one_job(
    bull_queue: BullQueue, redis_url: str, queue_name: str
) -> None:
    """Five producers on five connections enqueue one delivery at once: one job."""
    producers = [BullQueue(redis_url, queue_name, PREFIX) for _ in range(5)]
    try:
        await asyncio.gather(
            *(p.enqueue("delivery-2", {"kind": "route", "n": i}) for i, p in enumerate(producers))
        )
    finally:
        await asyncio.gather(*(p.close() for p in producers))
    counts = await bull_queue.counts()
    assert (counts["waiting"], sum(counts.values())) == (1, 1)


async def test_bull_queue__failed_job_absorbs_plain_enqueue_until_replaced(
    redis_url: str, queue_name: str
) -> None:
    """The trap: a job kept in `failed` makes Queue.add with its id a silent no-op."""
    q = BullQueue(redis_url, queue_name, PREFIX, attempts=1)
    calls: list[int] = []

    async def handler(data: dict[str, Any]) -> None:
        calls.append(data["n"])
        if data["n"] == 1:
            raise RuntimeError("transient")

    try:
        async with in_process_worker(redis_url, queue_name, handler):
            await q.enqueue("phase-3-plan", {"kind": "phase", "n": 1})
            await eventually(lambda: _state_is(q, "phase-3-plan", "failed"))
            await q.enqueue("phase-3-plan", {"kind": "phase", "n": 2})
            await asyncio.sleep(0.3)
            assert calls == [1]  # swallowed by jobId dedup
            assert await q.state("phase-3-plan") == "failed"
            await q.enqueue("phase-3-plan", {"kind": "phase", "n": 3}, replace_finished=True)
            await eventually(lambda: _state_is(q, "phase-3-plan", None))
        assert calls == [1, 3]
    finally:
        await q.obliterate()
        await q.close()


async def test_bull_queue__kept_completed_job_absorbs_plain_enqueue(
    redis_url: str, queue_name: str
) -> None:
    """Why completed jobs are removed by default: a kept one would swallow a re-enqueue."""
    q = BullQueue(redis_url, queue_name, PREFIX, remove_on_complete=False)
    calls: list[int] = []

    async def handler(data: dict[str, Any]) -> None:
        calls.append(data["n"])

    try:
        async with in_process_worker(redis_url, queue_name, handler):
            await q.enqueue("delivery-9", {"kind": "route", "n": 1})
            await eventually(lambda: _state_is(q, "delivery-9", "completed"))
            await q.enqueue("delivery-9", {"kind": "route", "n": 2})
            await asyncio.sleep(0.3)
            assert calls == [1]
            await q.enqueue("delivery-9", {"kind": "route", "n": 3}, replace_finished=True)
            await eventually(lambda: calls == [1, 3])
    finally:
        await q.obliterate()
        await q.close()


async def _state_is(q: BullQueue, job_id: str, state: str | None) -> bool:
    return await q.state(job_id) == state


@pytest.mark.slow
async def test_worker__sigkilled_mid_job__job_redelivered_to_another_worker(
    bull_queue: BullQueue, workers: WorkerProcesses
) -> None:
    """Failure window: the worker process dies (SIGKILL) while its handler runs."""
    await bull_queue.enqueue("job-1", {"kind": "demo", "id": "job-1", "sleep": 1.0})
    first = await workers.start("--sleep", "1")
    await workers.wait_for(lambda lines: starts(lines, "job-1") == [str(first.pid)])
    first.kill()
    await first.wait()
    second = await workers.start()
    lines = await workers.wait_for(lambda lines: ends(lines, "job-1") != [])
    assert starts(lines, "job-1") == [str(first.pid), str(second.pid)]
    assert ends(lines, "job-1") == [str(second.pid)]
    assert await bull_queue.state("job-1") is None  # completed (and removed)


@pytest.mark.slow
async def test_worker__killed_twice__job_fails_as_stalled_then_replace_runs_it(
    bull_queue: BullQueue, workers: WorkerProcesses
) -> None:
    """Failure window: two workers die in turn on the same job (maxStalledCount=1)."""
    await bull_queue.enqueue("job-2", {"kind": "demo", "id": "job-2", "sleep": 60})
    for _ in range(2):
        proc = await workers.start("--max-stalled", "1")
        await workers.wait_for(started("job-2", proc.pid))
        proc.kill()
        await proc.wait()
    await workers.start("--max-stalled", "1")  # the worker that finds it stalled too often
    info = await eventually(lambda: _failed_info(bull_queue, "job-2"))
    assert info["failed_reason"] == STALLED
    assert info["stalled_count"] == 2
    assert len(starts(workers.lines(), "job-2")) == 2  # failed without running the handler

    await bull_queue.enqueue("job-2", {"kind": "demo", "id": "job-2", "sleep": 0})
    assert await bull_queue.state("job-2") == "failed"  # plain enqueue is swallowed
    await bull_queue.enqueue(
        "job-2", {"kind": "demo", "id": "job-2", "sleep": 0}, replace_finished=True
    )
    lines = await workers.wait_for(lambda lines: ends(lines, "job-2") != [])
    assert len(starts(lines, "job-2")) == 3


async def _failed_info(q: BullQueue, job_id: str) -> dict[str, Any] | None:
    info = await q.job_info(job_id)
    return info if info and info["state"] == "failed" else None


@pytest.mark.slow
async def test_worker__sigterm_mid_job__job_finishes_and_process_exits_0(
    bull_queue: BullQueue, workers: WorkerProcesses
) -> None:
    """Failure window: the worker is told to stop (SIGTERM) while its handler runs."""
    await bull_queue.enqueue("job-3", {"kind": "demo", "id": "job-3", "sleep": 1.0})
    await bull_queue.enqueue("job-4", {"kind": "demo", "id": "job-4", "sleep": 1.0})
    proc = await workers.start("--grace", "10")
    await workers.wait_for(lambda lines: starts(lines, "job-3") != [])
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), WAIT_S) == 0
    lines = workers.lines()
    assert ends(lines, "job-3") == [str(proc.pid)]
    assert starts(lines, "job-4") == []  # no new job taken after the signal
    assert await bull_queue.state("job-3") is None
    assert await bull_queue.state("job-4") == "waiting"


@pytest.mark.slow
async def test_worker__sigterm_past_grace__job_released_not_stalled(
    bull_queue: BullQueue, workers: WorkerProcesses
) -> None:
    """Failure window: the handler outlives the stop grace; its job must go back, uncounted."""
    await bull_queue.enqueue("job-5", {"kind": "demo", "id": "job-5", "sleep": 60})
    proc = await workers.start("--grace", "0.2")
    await workers.wait_for(lambda lines: starts(lines, "job-5") != [])
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), WAIT_S) == 0
    info = await bull_queue.job_info("job-5")
    assert info is not None
    assert info["state"] in ("delayed", "waiting")  # released, not left active
    assert info["stalled_count"] == 0
    assert info["attempts_made"] == 0
    assert f"exit 0/1 {proc.pid}" in workers.lines()
    second = await workers.start()
    await workers.wait_for(lambda lines: starts(lines, "job-5")[-1:] == [str(second.pid)])


@pytest.mark.slow
async def test_worker__blocked_event_loop_loses_the_lock(
    bull_queue: BullQueue, workers: WorkerProcesses
) -> None:
    """Failure window: a handler blocks the event loop longer than lockDuration (a zombie).

    The lock is not renewed, another worker's stalled check takes the job back
    and runs it while the blocked worker still "runs" it. Only database fencing
    (G5) stops the zombie's writes; BullMQ merely refuses its completion.
    """
    await bull_queue.enqueue("job-6", {"kind": "demo", "id": "job-6"})
    blocked = await workers.start("--block", "5")
    await workers.wait_for(lambda lines: starts(lines, "job-6") == [str(blocked.pid)])
    healthy = await workers.start()
    lines = await workers.wait_for(lambda lines: str(healthy.pid) in ends(lines, "job-6"))
    assert starts(lines, "job-6") == [str(blocked.pid), str(healthy.pid)]
    assert str(blocked.pid) not in ends(lines, "job-6")  # re-delivered while the zombie ran
    await workers.wait_for(lambda lines: str(blocked.pid) in ends(lines, "job-6"))
    blocked.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(blocked.wait(), WAIT_S) == 0
    assert await bull_queue.state("job-6") is None
