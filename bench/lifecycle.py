"""Benchmark (b): the full lifecycle with a zero-latency agent and GitHub emulator.

N issues are driven at once through label → plan → /approve → PR → merge →
summary by users who react as soon as the bot is done (they poll the database
every 0.25 s). Two modes:

* `inprocess` — the emulator (own thread), the ingress and one BullMQ worker
  with the real job handler run in this process, so a SQLAlchemy
  `before_cursor_execute` listener on the system's engine counts every
  statement (and `begin` every transaction) it sends. The users read through
  a second engine, not counted.
* `processes` — a real `aw serve` and W `aw worker` processes (the emulator in
  this process): the throughput a deployment on this machine gets.

GitHub calls come from the emulator's counters: mutations, reads, and the
permission reads (cached per actor for 5 minutes) separately.

    .venv/bin/python bench/lifecycle.py --issues 100 --mode inprocess 2>/tmp/lifecycle.log
    .venv/bin/python bench/lifecycle.py --issues 100 --mode processes --workers 2 2>/tmp/lifecycle.log
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from common import (
    PG_ADMIN_URL,
    drive_issues,
    fresh_database,
    in_process_system,
    machine,
    queue_idle,
    runner_for,
)

from agent_workflow.logs import configure_logging
from github_emulator.client import Counters

PERMISSION_GET = "GET /repos/{owner}/{repo}/collaborators/{username}/permission"


def github_line(counters: Counters, tasks: int) -> str:
    perm = counters.requests.get(PERMISSION_GET, 0)
    reads = counters.reads - perm
    by_route = Counter({k: v for k, v in counters.requests.items()})
    routes = ", ".join(f"{k}: {v / tasks:.2f}" for k, v in sorted(by_route.items()))
    return (
        f"GitHub per task: {counters.mutations / tasks:.2f} mutations, {reads / tasks:.2f} reads "
        f"(+ {perm} permission GETs in total, cached per actor)\n  by route per task: {routes}"
    )


async def inprocess(issues: int, concurrency: int) -> None:
    async with (
        fresh_database() as db_url,
        in_process_system(db_url, f"life-{uuid.uuid4().hex[:8]}") as system,
    ):
        runner = runner_for(system, concurrency)
        stop = asyncio.Event()
        running = asyncio.create_task(runner.run(stop))
        await system.emu.admin.reset_counters()
        system.counter.reset()
        started = time.perf_counter()
        users = await drive_issues(system, issues)
        elapsed = time.perf_counter() - started
        await queue_idle(system)
        stop.set()
        await running
        counters = await system.emu.admin.counters()
        webhooks = len(system.emu.emulator.webhooks.deliveries)
        c = system.counter
        verbs = ", ".join(f"{k} {v / issues:.1f}" for k, v in c.statements.most_common())
        print(f"mode inprocess: {issues} issues, worker concurrency {concurrency}")
        print(f"tasks/s: {issues / elapsed:.2f} ({elapsed:.1f} s for {issues} full lifecycles)")
        print(
            f"database per task: {c.total / issues:.1f} statements ({verbs}); "
            f"{c.begins / issues:.1f} transactions"
        )
        print(github_line(counters, issues))
        print(
            f"webhooks per task: {webhooks / issues:.1f} (user actions: {len(users.sent) / issues:.1f})"
        )


async def processes(issues: int, workers: int, concurrency: int) -> None:
    import random

    from chaos.cluster import Cluster
    from chaos.config import ChaosConfig
    from chaos.driver import Users
    from chaos.services import RedisServer, create_database, drop_database
    from chaos.system import aw_environment, github_world
    from chaos.world import Timeline

    from agent_workflow.demo.process import free_port
    from agent_workflow.store import connect

    workdir = Path(tempfile.mkdtemp(prefix="aw-bench-life-"))
    redis = RedisServer(workdir / "redis.log")
    await redis.start()
    db_url = await create_database(PG_ADMIN_URL, prefix="aw_bench")
    config = ChaosConfig(
        issues=issues,
        workers=workers,
        issue_interval_s=0.0,
        block_fraction=0.0,
        error_fraction=0.0,
        noise_fraction=0.0,
        agent_duration_s=0.0,
        agent_jitter_s=0.0,
        concurrency=concurrency,
    )
    port = free_port()
    try:
        async with github_world(f"http://127.0.0.1:{port}") as emu:
            env = aw_environment(config, workdir, db_url, redis.url, emu.url, port)
            cluster = Cluster(workdir, env, workers, seed=0)
            await cluster.start(f"http://127.0.0.1:{port}")
            store = await connect(db_url, migrate=False)
            try:
                users = Users(config, emu.admin, store, Timeline(), random.Random(0))
                await users.create_issues()
                started = time.perf_counter()
                await users.run(time.monotonic() + 600)
                elapsed = time.perf_counter() - started
                counters = await emu.admin.counters()
            finally:
                await store.close()
                await cluster.shutdown()
        print(
            f"mode processes: {issues} issues, aw serve + {workers} aw worker (concurrency {concurrency})"
        )
        print(f"tasks/s: {issues / elapsed:.2f} ({elapsed:.1f} s for {issues} full lifecycles)")
        print(github_line(counters, issues))
    finally:
        await redis.stop()
        await drop_database(PG_ADMIN_URL, db_url)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--issues", type=int, default=100)
    p.add_argument("--mode", choices=("inprocess", "processes"), default="inprocess")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("-c", "--concurrency", type=int, default=4)
    args = p.parse_args()
    configure_logging(json=True)  # as the aw processes log (JSON lines to stderr)
    print(f"machine: {machine()}")
    if args.mode == "inprocess":
        asyncio.run(inprocess(args.issues, args.concurrency))
    else:
        asyncio.run(processes(args.issues, args.workers, args.concurrency))
