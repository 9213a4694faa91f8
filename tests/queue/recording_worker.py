"""TEST HELPER, not product code: a BullMQ worker process that records what it does.

    python -m tests.queue.recording_worker --redis URL --queue NAME \\
        --prefix P --record FILE [--sleep S] [--block S] [--grace S] ...

Each job's data carries `id` (and optionally `sleep`). The handler appends
`start <id> <pid>`, sleeps, then appends `end <id> <pid>` to FILE, so tests
running several of these processes (and SIGKILLing/SIGTERMing them) can see
who ran what. `--block S` sleeps with `time.sleep`, blocking the event loop on
purpose, to show that a blocked loop loses the BullMQ lock. SIGTERM/SIGINT stop
the worker gracefully; the process then exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from agent_workflow.queue.bullmq_backend import BullWorkerRunner


def _record(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(line + "\n")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--redis", required=True)
    p.add_argument("--queue", required=True)
    p.add_argument("--prefix", default="aw")
    p.add_argument("--record", required=True, type=Path)
    p.add_argument("--sleep", type=float, default=0.0, help="seconds each job takes (awaited)")
    p.add_argument("--block", type=float, default=0.0, help="seconds each job blocks the loop")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--lock-ms", type=int, default=2_000)
    p.add_argument("--stalled-ms", type=int, default=1_000)
    p.add_argument("--max-stalled", type=int, default=1)
    p.add_argument("--grace", type=float, default=10.0)
    return p.parse_args(argv)


async def _main(args: argparse.Namespace) -> None:
    pid = os.getpid()

    async def handle(data: dict[str, Any]) -> None:
        job = data.get("id", "?")
        _record(args.record, f"start {job} {pid}")
        if args.block:
            time.sleep(args.block)  # noqa: ASYNC251 -- blocks the loop on purpose (lock-loss test)
        else:
            await asyncio.sleep(float(data.get("sleep", args.sleep)))
        _record(args.record, f"end {job} {pid}")

    runner = BullWorkerRunner(
        args.redis,
        args.queue,
        handle,
        prefix=args.prefix,
        concurrency=args.concurrency,
        lock_duration_ms=args.lock_ms,
        stalled_interval_ms=args.stalled_ms,
        max_stalled_count=args.max_stalled,
        grace_s=args.grace,
        worker_name=f"recording-worker-{os.getpid()}",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    _record(args.record, f"ready - {pid}")
    await runner.run(stop)
    _record(args.record, f"exit {runner.completed}/{runner.released} {pid}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the test worker."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(message)s")
    asyncio.run(_main(_parse(argv)))


if __name__ == "__main__":
    main()
