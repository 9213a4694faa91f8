"""Benchmark (c): acknowledgement latency of `POST /webhooks/github` at a fixed request rate.

A real `aw serve` child process (BullMQ mode: PostgreSQL inbox insert plus a
BullMQ enqueue before the 202) receives signed `issue_comment.created`
webhooks with `/approve` — a payload taken from the GitHub emulator, so it is
stored and enqueued, not ignored — each with a fresh delivery id, at a fixed
rate (open loop: request i is due at t0 + i/rate whatever happened before).
Latency is measured from the moment a request was due to its answer, so a
server that falls behind is charged for it (no coordinated omission); the
first second is warm-up and not counted. No worker consumes the jobs.

    .venv/bin/python bench/webhook_latency.py --rate 200 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from common import BENCH_PREFIX, REDIS_URL, fresh_database, machine

from agent_workflow.chaos.world import REPO, SECRET, USER
from agent_workflow.demo.process import AwProcess, free_port
from agent_workflow.forge.emulator import EmulatorServer
from agent_workflow.forge.emulator.webhooks import sign
from agent_workflow.queue.bullmq_backend import BullQueue

WARMUP_S = 1.0


async def sample_payload() -> tuple[str, bytes]:
    """A real `issue_comment.created` body as the emulator sends it (no receiver listening)."""
    async with EmulatorServer(
        webhook_url="http://127.0.0.1:9/unused", webhook_secret=SECRET
    ) as emu:
        await emu.admin.create_repo(REPO)
        await emu.admin.set_permission(REPO, USER, "write")
        number = await emu.admin.create_issue(REPO, "Latency", body="Make it fast.", author=USER)
        acted = await emu.admin.comment(REPO, number, "/approve", user=USER)
        delivery = next(d for d in await emu.admin.deliveries() if d.id == acted.deliveries[0].id)
        assert delivery.payload is not None
        return delivery.event, json.dumps(delivery.payload, separators=(",", ":")).encode()


async def load(
    url: str, event: str, body: bytes, rate: float, seconds: float
) -> tuple[list[float], list[float], int]:
    """Open-loop load; returns (latency from due time, latency from send, errors)."""
    signature = sign(SECRET, body)
    due_latency: list[float] = []
    send_latency: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:

        async def one(due: float, counted: bool) -> None:
            nonlocal errors
            headers = {
                "content-type": "application/json",
                "x-github-event": event,
                "x-github-delivery": str(uuid.uuid4()),
                "x-github-hook-id": "1",
                "x-hub-signature-256": signature,
            }
            sent = time.perf_counter()
            try:
                response = await client.post(url, content=body, headers=headers)
                ok = response.status_code == 202
            except httpx.HTTPError:
                ok = False
            done = time.perf_counter()
            if not ok:
                errors += 1
            elif counted:
                due_latency.append(done - due)
                send_latency.append(done - sent)

        tasks = []
        start = time.perf_counter() + 0.1
        total = int(rate * (seconds + WARMUP_S))
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(due, i >= rate * WARMUP_S)))
        await asyncio.gather(*tasks)
    return due_latency, send_latency, errors


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def main(rate: float, seconds: float, log_level: str) -> None:
    print(f"machine: {machine()}")
    event, body = await sample_payload()
    workdir = Path(tempfile.mkdtemp(prefix="aw-bench-latency-"))
    port = free_port()
    queue = f"latency-{uuid.uuid4().hex[:8]}"
    async with fresh_database() as db_url:
        env = {
            "AW_DATABASE_URL": db_url,
            "AW_REDIS_URL": REDIS_URL,
            "AW_QUEUE_NAME": queue,
            "AW_QUEUE_PREFIX": BENCH_PREFIX,
            "AW_GITHUB_API_URL": "http://127.0.0.1:9",
            "AW_GITHUB_TOKEN": "unused",
            "AW_WEBHOOK_SECRET": SECRET,
            "AW_PORT": str(port),
            "AW_LOG_LEVEL": log_level,
            "AW_LOG_JSON": "1",
            "AW_CONFIG_FILE": str(workdir / "none.toml"),
        }
        serve = AwProcess("serve", env, workdir / "serve.log")
        await serve.start()
        url = f"http://127.0.0.1:{port}"
        try:
            await serve.wait_healthy(url)
            due, sent, errors = await load(f"{url}/webhooks/github", event, body, rate, seconds)
        finally:
            await serve.stop()
            bq = BullQueue(REDIS_URL, queue, BENCH_PREFIX)
            await bq.obliterate()
            await bq.close()
    print(
        f"aw serve (BullMQ mode, log level {log_level}): {rate:.0f} requests/s for {seconds:.0f} s, "
        f"{len(due)} counted, {errors} errors"
    )
    print(
        f"latency from due time: p50 {pct(due, 0.5):.1f} ms, p90 {pct(due, 0.9):.1f} ms, "
        f"p99 {pct(due, 0.99):.1f} ms, max {max(due) * 1000:.1f} ms"
    )
    print(
        f"latency from send:     p50 {pct(sent, 0.5):.1f} ms, p99 {pct(sent, 0.99):.1f} ms, "
        f"mean {statistics.mean(sent) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument(
        "--log-level", default="INFO", help="AW_LOG_LEVEL of aw serve (INFO is the default)"
    )
    args = p.parse_args()
    asyncio.run(main(args.rate, args.seconds, args.log_level))
