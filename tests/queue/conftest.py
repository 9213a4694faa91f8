"""Fixtures for queue tests: the real Redis server, a fresh queue per test, worker processes.

Redis tests never skip: a missing server is a failure (CI must start it), like PostgreSQL.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from agent_workflow.queue.bullmq_backend import BullQueue

PREFIX = "awtest"  # every test queue lives under this prefix, with a unique name
LOCK_MS = 2_000  # small lock so a killed worker's job returns within seconds
STALLED_MS = 1_000  # stalled check every second: re-delivery after ~LOCK_MS + STALLED_MS
WAIT_S = 20.0  # generous bound on any single wait for a process to do something


@pytest.fixture
def queue_name() -> str:
    """A queue name no other test uses."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def bull_queue(redis_url: str, queue_name: str) -> AsyncIterator[BullQueue]:
    """A producer on a fresh queue, obliterated afterwards."""
    q = BullQueue(redis_url, queue_name, PREFIX)
    yield q
    await q.obliterate()
    await q.close()


class WorkerProcesses:
    """Starts `_demo_worker` processes on one queue; all append to one record file."""

    def __init__(self, redis_url: str, queue: str, directory: Path) -> None:
        self.redis_url = redis_url
        self.queue = queue
        self.directory = directory
        self.record = directory / "record.txt"
        self.record.touch()
        self.started: list[asyncio.subprocess.Process] = []

    async def start(self, *extra: str) -> asyncio.subprocess.Process:
        """Start one worker process (lock 2 s, stalled check 1 s unless `extra` overrides)."""
        log = (self.directory / f"worker-{len(self.started)}.log").open("ab")
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.queue.recording_worker",
                *("--redis", self.redis_url, "--queue", self.queue, "--prefix", PREFIX),
                *("--record", str(self.record)),
                *("--lock-ms", str(LOCK_MS), "--stalled-ms", str(STALLED_MS)),
                *extra,
                stdout=log,
                stderr=log,
            )
        finally:
            log.close()
        self.started.append(proc)
        await self.wait_for(lambda lines: f"ready - {proc.pid}" in lines)
        return proc

    def lines(self) -> list[str]:
        """Lines recorded so far: `start <id> <pid>`, `end <id> <pid>`, `ready - <pid>`, …"""
        return self.record.read_text(encoding="utf-8").splitlines()

    def logs(self) -> str:
        """Everything the workers printed (for failure messages)."""
        return "\n".join(p.read_text(errors="replace") for p in self.directory.glob("*.log"))

    async def wait_for(self, predicate: Callable[[list[str]], bool]) -> list[str]:
        """Poll the record until `predicate(lines)` holds; fail after WAIT_S."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while not predicate(lines := self.lines()):
            if loop.time() > deadline:
                raise AssertionError(f"timed out; record:\n{lines}\nlogs:\n{self.logs()}")
            await asyncio.sleep(0.05)
        return lines

    async def aclose(self) -> None:
        """SIGKILL whatever we started that is still running."""
        for proc in self.started:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()


@pytest.fixture
async def workers(
    redis_url: str, queue_name: str, tmp_path: Path
) -> AsyncIterator[WorkerProcesses]:
    """Worker processes for this test's queue, killed at teardown."""
    procs = WorkerProcesses(redis_url, queue_name, tmp_path)
    yield procs
    await procs.aclose()
