"""Benchmark (d): from SIGKILL of a worker mid-phase to the phase running again.

A real `aw serve` and two `aw worker`s (BullMQ on a private Redis, a fresh
PostgreSQL database, the GitHub emulator in this process) and a scripted
agent slow enough to be killed mid-run. For each sample one issue is labelled;
once its plan phase is active, the worker holding the lease is SIGKILLed
(and started again at once, as a supervisor would). The recovery time is
`agent_runs.started_at` of the phase's next agent start (mode `resume`) minus
the kill time. Two ways back exist: BullMQ re-delivers the dead worker's job
after its lock expires and a stalled check runs, and the sweeper re-enqueues a
phase whose lease expired. Target: ≤ lockDuration + stalledInterval + 1 s.

    .venv/bin/python bench/recovery.py --profile fast --samples 10
    .venv/bin/python bench/recovery.py --profile default --samples 3
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from chaos.cluster import Cluster
from chaos.config import ChaosConfig
from chaos.services import RedisServer, create_database, drop_database
from chaos.system import aw_environment, github_world
from chaos.world import REPO, USER
from common import PG_ADMIN_URL, machine
from sqlalchemy import select

from agent_workflow.demo.process import free_port
from agent_workflow.store import Store, connect
from agent_workflow.store.schema import agent_runs, phase_runs, tasks

PROFILES = {
    # The shipped defaults (config.py): lease 30 s, heartbeat 10 s, lock 30 s, stalled 30 s.
    "default": ChaosConfig(
        lease_s=30.0,
        heartbeat_s=10.0,
        lock_duration_ms=30_000,
        stalled_interval_ms=30_000,
        sweep_interval_s=15.0,
        sweep_grace_s=30.0,
        agent_duration_s=90.0,
        agent_jitter_s=0.0,
    ),
    # The chaos run's short settings.
    "fast": ChaosConfig(agent_duration_s=8.0, agent_jitter_s=0.0),
}


async def plan_of(store: Store, issue: int) -> tuple[int, str, str | None] | None:
    stmt = (
        select(phase_runs.c.id, phase_runs.c.status, phase_runs.c.lease_owner)
        .join(tasks, tasks.c.id == phase_runs.c.task_id)
        .where(tasks.c.repo == REPO, tasks.c.issue_number == issue, phase_runs.c.phase == "plan")
    )
    async with store.engine.connect() as conn:
        row = (await conn.execute(stmt)).first()
    return None if row is None else (row.id, row.status, row.lease_owner)


async def next_start(
    store: Store, run_id: int, after: float, timeout_s: float
) -> tuple[float, str, str] | None:
    deadline = time.monotonic() + timeout_s
    stmt = (
        select(agent_runs.c.started_at, agent_runs.c.owner, agent_runs.c.mode)
        .where(agent_runs.c.phase_run_id == run_id, agent_runs.c.started_at > after)
        .order_by(agent_runs.c.started_at)
    )
    while time.monotonic() < deadline:
        async with store.engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        if row is not None:
            return row.started_at, row.owner, row.mode
        await asyncio.sleep(0.05)
    return None


async def main(profile: str, samples: int, seed: int) -> None:
    config = PROFILES[profile]
    target = (config.lock_duration_ms + config.stalled_interval_ms) / 1000 + 1
    print(f"machine: {machine()}")
    print(
        f"profile {profile}: AW_LEASE_S={config.lease_s} AW_HEARTBEAT_S={config.heartbeat_s} "
        f"AW_LOCK_DURATION_MS={config.lock_duration_ms} AW_STALLED_INTERVAL_MS={config.stalled_interval_ms} "
        f"AW_SWEEP_INTERVAL_S={config.sweep_interval_s} AW_MAX_STALLED_COUNT={config.max_stalled_count}; "
        f"target ≤ {target:.1f} s"
    )
    rng = random.Random(seed)
    workdir = Path(tempfile.mkdtemp(prefix="aw-bench-recovery-"))
    redis = RedisServer(workdir / "redis.log")
    await redis.start()
    db_url = await create_database(PG_ADMIN_URL, prefix="aw_bench")
    port = free_port()
    gaps: list[float] = []
    try:
        async with github_world(f"http://127.0.0.1:{port}") as emu:
            env = aw_environment(config, workdir, db_url, redis.url, emu.url, port)
            cluster = Cluster(workdir, env, 2, seed)
            await cluster.start(f"http://127.0.0.1:{port}")
            store = await connect(db_url, migrate=False)
            try:
                for n in range(samples):
                    issue = await emu.admin.create_issue(REPO, f"Recovery {n}", author=USER)
                    await emu.admin.add_label(REPO, issue, "agent", user=USER)
                    while (  # noqa: ASYNC110 - the database is polled, nothing to wait on
                        (plan := await plan_of(store, issue)) is None
                        or plan[1] != "active"
                        or not plan[2]
                    ):
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(rng.uniform(0.5, 2.0))  # somewhere mid-agent
                    run_id, _, owner = plan
                    slot = next(s for s in cluster.slots if s.owner == owner)
                    killed_at = time.time()
                    await cluster.kill(slot)
                    await cluster.restart(slot)
                    found = await next_start(store, run_id, killed_at, timeout_s=target * 3)
                    if found is None:
                        print(f"  sample {n}: no takeover within {target * 3:.0f} s")
                        continue
                    started_at, by, mode = found
                    gaps.append(started_at - killed_at)
                    print(f"  sample {n}: killed {owner}; {mode} by {by} after {gaps[-1]:.2f} s")
            finally:
                await store.close()
                await cluster.shutdown()
    finally:
        await redis.stop()
        await drop_database(PG_ADMIN_URL, db_url)
    if gaps:
        print(
            f"recovery ({profile}): n={len(gaps)} min {min(gaps):.2f} s, p50 {statistics.median(gaps):.2f} s, "
            f"max {max(gaps):.2f} s (target ≤ {target:.1f} s)"
        )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", choices=sorted(PROFILES), default="fast")
    p.add_argument("--samples", type=int, default=10)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    asyncio.run(main(args.profile, args.samples, args.seed))
