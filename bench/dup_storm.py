"""Benchmark (a): a duplicate storm through the guard path, against raw BullMQ no-op jobs.

Setup: the emulator, the ingress and a BullMQ worker with the real job handler
(all in this process, PostgreSQL and the shared Redis for real) take a few
issues through the whole lifecycle with a zero-latency scripted agent. Then
the storm: N `route` jobs, each a duplicate of one of those issues' stored
deliveries (label `agent`, `/approve`, the merge), are enqueued under fresh
job ids and drained by a fresh `BullWorkerRunner` — the path an at-least-once
redelivery takes. Every one of them ends in a guard: the phase is already
complete with its effects done (variant `complete`), or held by a live lease
elsewhere (variant `active`). Nothing may reach GitHub.

In the same run, on the same Redis, `queue/bench_noop.py` measures raw BullMQ
with the same number of jobs and the same concurrency, with a bare `Worker`
and through `BullWorkerRunner`. The figure of merit is storm jobs/s ÷ raw
no-op jobs/s (target ≥ 0.5).

    PYTHONPATH=. .venv/bin/python bench/dup_storm.py --jobs 3000 --concurrency 4 2>/tmp/dup_storm.log
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

from bench_noop import bench_noop
from chaos.world import HOOK_ID, REPO
from common import (
    REDIS_URL,
    InProcessSystem,
    drive_issues,
    fresh_database,
    in_process_system,
    machine,
    queue_idle,
    runner_for,
)
from sqlalchemy import update

from agent_workflow.logs import configure_logging
from agent_workflow.store.schema import phase_runs

ENQUEUE_BATCH = 500


async def storm(
    system: InProcessSystem,
    targets: list[str],
    jobs: int,
    concurrency: int,
    profile: Path | None = None,
) -> tuple[float, float, float]:
    """Enqueue `jobs` duplicates of `targets` (delivery ids), drain them; (jobs/s, stmts/job, begins/job)."""
    queue = system.rt.queue._queue  # type: ignore[attr-defined]  # the bare BullMQ Queue, for addBulk
    tag = uuid.uuid4().hex[:6]
    for first in range(0, jobs, ENQUEUE_BATCH):
        await queue.addBulk(
            [
                {
                    "name": "route",
                    "data": {
                        "kind": "route",
                        "delivery_id": targets[i % len(targets)],
                        "hook_id": HOOK_ID,
                    },
                    "opts": {"jobId": f"storm-{tag}-{i}", "removeOnComplete": True},
                }
                for i in range(first, min(first + ENQUEUE_BATCH, jobs))
            ]
        )
    before = await system.emu.admin.counters()
    system.counter.reset()
    runner = runner_for(system, concurrency)
    stop = asyncio.Event()
    profiler = None
    if profile is not None:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
    started = time.perf_counter()
    task = asyncio.create_task(runner.run(stop))
    # Every job was added before the runner started: an empty queue means drained.
    while await queue.getJobCountByTypes("waiting", "active", "delayed") > 0:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    if profiler is not None and profile is not None:
        profiler.stop()
        text = profiler.output_text(unicode=True, show_all=False)
        await asyncio.to_thread(profile.write_text, text)
        print(f"  profile written to {profile}")
    stop.set()
    await task
    after = await system.emu.admin.counters()
    github = (after.mutations + after.reads) - (before.mutations + before.reads)
    if github:
        print(f"  !! the storm made {github} GitHub requests (G6 expects 0)")
    if runner.failed:
        print(f"  !! {runner.failed} storm jobs failed")
    for text, n in system.counter.texts.most_common():
        print(f"    {n / jobs:4.1f} × {text}")
    return jobs / elapsed, system.counter.total / jobs, system.counter.begins / jobs


VARIANTS = {
    "replayed": "the same delivery again (a redelivered job), phases complete",
    "new-id": "a new delivery of an event already handled, phases complete",
    "active": "a new delivery of the label event, the phase held by a live lease",
}


async def main(
    jobs: int, concurrency: int, issues: int, repeat: int, profile: Path | None = None
) -> None:
    configure_logging(json=True)  # as `aw worker` logs (JSON lines to stderr): part of the cost
    print(f"machine: {machine()}")
    print(f"redis: {REDIS_URL}  jobs: {jobs}  concurrency: {concurrency}")
    queue = f"storm-{uuid.uuid4().hex[:8]}"
    async with fresh_database() as db_url, in_process_system(db_url, queue) as system:
        setup = runner_for(system, 4)
        stop = asyncio.Event()
        running = asyncio.create_task(setup.run(stop))
        users = await drive_issues(system, issues)
        await queue_idle(system)
        stop.set()
        await running
        # The last issue's phases are pinned as held by a live lease elsewhere.
        last = max(users.issues)
        async with system.store.engine.begin() as conn:
            await conn.execute(
                update(phase_runs)
                .where(phase_runs.c.task_id == select_task(last))
                .values(status="active", lease_owner="elsewhere", lease_until=time.time() + 3600)
            )
        stored = await stored_deliveries(system)
        # Only deliveries the inbox kept (an `issues.closed` from a merge is ignored at
        # ingress). The pinned issue gets its label only: `/approve` would say "not ready".
        done = [d.id for d in users.sent if d.issue != last and d.id in stored]
        label = [
            d.id for d in users.sent if d.issue == last and d.event == "issues" and d.id in stored
        ]
        results: dict[str, list[float]] = {k: [] for k in (*VARIANTS, "noop", "noop_runner")}
        stmts: dict[str, tuple[float, float]] = {}
        for _ in range(repeat):
            for name in VARIANTS:
                if name == "replayed":
                    targets = done
                else:
                    targets = await clone_deliveries(
                        system, done if name == "new-id" else label, jobs
                    )
                rate, per_job, begins = await storm(
                    system, targets, jobs, concurrency, profile if name == "new-id" else None
                )
                results[name].append(rate)
                stmts[name] = (per_job, begins)
            raw = await bench_noop(REDIS_URL, jobs=jobs, concurrency=concurrency)
            results["noop"].append(raw.jobs_per_s)
            via = await bench_noop(REDIS_URL, jobs=jobs, concurrency=concurrency, via_runner=True)
            results["noop_runner"].append(via.jobs_per_s)
    best = {k: max(v) for k, v in results.items()}
    print(
        f"raw BullMQ no-op, bare Worker:      {best['noop']:6.0f} jobs/s  runs {fmt(results['noop'])}"
    )
    print(
        f"raw BullMQ no-op, BullWorkerRunner: {best['noop_runner']:6.0f} jobs/s  "
        f"runs {fmt(results['noop_runner'])}"
    )
    for name, what in VARIANTS.items():
        per_job, begins = stmts[name]
        print(
            f"storm {name:8} {best[name]:6.0f} jobs/s  runs {fmt(results[name])}  "
            f"ratio {best[name] / best['noop']:.2f}  "
            f"({per_job:.1f} statements, {begins:.1f} transactions per job): {what}"
        )


async def clone_deliveries(system: InProcessSystem, sources: list[str], n: int) -> list[str]:
    """`n` new inbox rows, each a copy of one of `sources` under a fresh delivery id."""
    from sqlalchemy import insert, select

    from agent_workflow.store.schema import deliveries

    async with system.store.engine.begin() as conn:
        rows = (
            (await conn.execute(select(deliveries).where(deliveries.c.delivery_id.in_(sources))))
            .mappings()
            .all()
        )
        tag = uuid.uuid4().hex[:8]
        clones = []
        for i in range(n):
            row, delivery_id = rows[i % len(rows)], f"clone-{tag}-{i}"
            # As the ingress stores a new delivery: the payload and the event parsed from it.
            parsed = dict(row["parsed"], delivery_id=delivery_id) if row["parsed"] else None
            clones.append(
                {
                    "delivery_id": delivery_id,
                    "hook_id": row["hook_id"],
                    "event": row["event"],
                    "action": row["action"],
                    "payload": row["payload"],
                    "parsed": parsed,
                    "received_at": time.time(),
                }
            )
        await conn.execute(insert(deliveries), clones)
    return [c["delivery_id"] for c in clones]


async def stored_deliveries(system: InProcessSystem) -> set[str]:
    """Delivery ids in the inbox."""
    from sqlalchemy import select

    from agent_workflow.store.schema import deliveries

    async with system.store.engine.connect() as conn:
        return set((await conn.execute(select(deliveries.c.delivery_id))).scalars())


def select_task(issue: int) -> Any:
    """The task id of an issue, as a scalar subquery."""
    from sqlalchemy import select

    from agent_workflow.store.schema import tasks

    return (
        select(tasks.c.id)
        .where(tasks.c.repo == REPO, tasks.c.issue_number == issue)
        .scalar_subquery()
    )


def fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.0f}" for v in values) + "]"


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", "--jobs", type=int, default=3000)
    p.add_argument("-c", "--concurrency", type=int, default=4)
    p.add_argument("--issues", type=int, default=4)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--profile", type=Path, help="write a pyinstrument profile of the storm here")
    args = p.parse_args()
    asyncio.run(main(args.jobs, args.concurrency, args.issues, args.repeat, args.profile))
