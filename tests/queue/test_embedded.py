"""EmbeddedQueue: bounded concurrency, in-flight dedup, error isolation, close semantics."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from agent_workflow.queue import (
    EmbeddedQueue,
    InvalidJobId,
    JobQueue,
    QueueClosed,
    safe_job_id,
    validate_job_id,
)


class Recorder:
    """A handler that records calls and can be held at a gate."""

    def __init__(self, *, sleep: float = 0.0) -> None:
        self.sleep = sleep
        self.started: list[Any] = []
        self.ended: list[Any] = []
        self.cancelled: list[Any] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.current = 0
        self.peak = 0

    async def __call__(self, data: dict[str, Any]) -> None:
        self.started.append(data["id"])
        self.current += 1
        self.peak = max(self.peak, self.current)
        try:
            await self.gate.wait()
            await asyncio.sleep(data.get("sleep", self.sleep))
            if data.get("fail"):
                raise RuntimeError(f"boom {data['id']}")
            self.ended.append(data["id"])
        except asyncio.CancelledError:
            self.cancelled.append(data["id"])
            raise
        finally:
            self.current -= 1


async def until(predicate: Any) -> None:
    """Let the loop run until `predicate()` holds (at most 5 s)."""
    async with asyncio.timeout(5):
        while not predicate():  # noqa: ASYNC110 -- watches the queue from outside, on purpose
            await asyncio.sleep(0.001)


async def test_embedded__satisfies_the_protocol() -> None:
    q = EmbeddedQueue(Recorder(), concurrency=8, close_timeout=30.0)
    assert isinstance(q, JobQueue)
    await q.close()


async def test_embedded__bounded_concurrency_is_honoured() -> None:
    handler = Recorder(sleep=0.02)
    q = EmbeddedQueue(handler, concurrency=3, close_timeout=30.0)
    for i in range(12):
        await q.enqueue(f"job-{i}", {"id": i})
    await q.join()
    assert handler.peak == 3
    assert sorted(handler.ended) == list(range(12))
    assert q.completed == 12
    assert q.in_flight == frozenset()
    await q.close()


async def test_embedded__duplicate_id_in_flight_runs_once() -> None:
    handler = Recorder()
    handler.gate.clear()
    q = EmbeddedQueue(handler, concurrency=1, close_timeout=30.0)
    await q.enqueue("same", {"id": "first"})
    await q.enqueue("other", {"id": "other"})  # queued behind "same"
    await until(lambda: handler.started == ["first"])
    await q.enqueue("same", {"id": "second"})  # running: no-op
    await q.enqueue("other", {"id": "other-again"})  # queued: no-op
    handler.gate.set()
    await q.join()
    assert handler.ended == ["first", "other"]
    await q.close()


async def test_embedded__finished_id_runs_again() -> None:
    handler = Recorder()
    q = EmbeddedQueue(handler, concurrency=8, close_timeout=30.0)
    await q.enqueue("same", {"id": 1})
    await q.join()
    await q.enqueue("same", {"id": 2})
    await q.join()
    assert handler.ended == [1, 2]
    await q.close()


async def test_embedded__enqueue_just_after_the_handler_returned_is_not_swallowed() -> None:
    """Window: the handler has returned but its task has not finished yet."""
    runs: list[str] = []
    a_returning = asyncio.Event()

    async def handler(data: dict[str, Any]) -> None:
        runs.append(data["id"])
        if data["id"] == "a1":
            a_returning.set()  # wakes "b" before this task's done callbacks run
        elif data["id"] == "b":
            await a_returning.wait()
            await q.enqueue("a", {"id": "a2"})

    q = EmbeddedQueue(handler, concurrency=2, close_timeout=30.0)
    await q.enqueue("b", {"id": "b"})
    await q.enqueue("a", {"id": "a1"})
    await q.join()
    assert runs == ["b", "a1", "a2"]
    await q.close()


async def test_embedded__handler_error_is_logged_and_dispatcher_survives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = Recorder()
    q = EmbeddedQueue(handler, concurrency=2, close_timeout=30.0)
    with caplog.at_level(logging.ERROR, logger="agent_workflow.queue.embedded"):
        await q.enqueue("bad", {"id": "bad", "fail": True})
        await q.enqueue("good", {"id": "good"})
        await q.join()
        await q.enqueue("after", {"id": "after"})
        await q.join()
    assert handler.ended == ["good", "after"]
    assert (q.completed, q.failed) == (2, 1)
    assert "job bad failed" in caplog.text
    assert "boom bad" in caplog.text
    await q.close()


async def test_embedded__join_waits_for_jobs_enqueued_by_handlers() -> None:
    seen: list[str] = []

    async def chain(data: dict[str, Any]) -> None:
        await asyncio.sleep(0.01)
        seen.append(data["id"])
        if data["id"] == "route":
            await q.enqueue("phase", {"id": "phase"})

    q = EmbeddedQueue(chain, concurrency=8, close_timeout=30.0)
    await q.enqueue("route", {"id": "route"})
    await q.join()
    assert seen == ["route", "phase"]
    await q.close()


async def test_embedded__close_waits_for_running_and_drops_unstarted() -> None:
    handler = Recorder(sleep=0.1)
    q = EmbeddedQueue(handler, concurrency=1, close_timeout=30.0)
    await q.enqueue("running", {"id": "running"})
    await q.enqueue("queued", {"id": "queued"})
    await until(lambda: handler.started == ["running"])
    await q.close()
    assert handler.ended == ["running"]
    assert handler.started == ["running"]  # the queued job never started
    assert q.in_flight == frozenset()
    with pytest.raises(QueueClosed):
        await q.enqueue("late", {"id": "late"})


async def test_embedded__close_cancels_jobs_past_the_timeout() -> None:
    handler = Recorder(sleep=30)
    q = EmbeddedQueue(handler, close_timeout=0.05, concurrency=8)
    await q.enqueue("slow", {"id": "slow"})
    await until(lambda: handler.started == ["slow"])
    async with asyncio.timeout(5):
        await q.close()
    assert handler.cancelled == ["slow"]
    assert handler.ended == []


async def test_embedded__cancel_on_close_does_not_wait() -> None:
    handler = Recorder(sleep=30)
    q = EmbeddedQueue(handler, cancel_on_close=True, close_timeout=None, concurrency=8)
    await q.enqueue("slow", {"id": "slow"})
    await until(lambda: handler.started == ["slow"])
    async with asyncio.timeout(5):
        await q.close()
    assert handler.cancelled == ["slow"]


@pytest.mark.parametrize("bad", ["", "a:b", "12345", "x" * 201])
async def test_embedded__invalid_job_id_is_refused(bad: str) -> None:
    q = EmbeddedQueue(Recorder(), concurrency=8, close_timeout=30.0)
    with pytest.raises(InvalidJobId):
        await q.enqueue(bad, {"id": bad})
    await q.close()


def test_safe_job_id__is_valid_and_injective() -> None:
    raws = ["a:b", "a%3Ab", "a%b", "123", "%N123", "a-b", "a%25b", "0:0", "N123", "%123"]
    mapped = [safe_job_id(r) for r in raws]
    assert all(validate_job_id(m) == m for m in mapped)
    assert len(set(mapped)) == len(raws)
    assert safe_job_id("72d3162e-cc78-11e3-81ab-4c9367dc0958") == (
        "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    )
