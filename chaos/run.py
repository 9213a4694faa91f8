"""`run_chaos`: set up, drive issues under injected faults, settle, wait out a quiet period, judge.

The order of a run:

1. a private `redis-server`, a fresh PostgreSQL database, the GitHub emulator
   (in-process, its own thread) and a real `aw serve` plus N `aw worker`s;
2. the users open every issue and walk them through their lifecycle while the
   injector spends its budgets (kills, stops, a Redis restart, GitHub faults,
   redelivered webhooks, duplicate jobs);
3. settle: wait until every delivery is routed and every phase is final with
   its effects (the sweeper's job after the last fault);
4. quiet: wait past every lease, lock and sweep, and prove GitHub did not
   change meanwhile (a woken zombie or a late retry would show here);
5. judge G1–G5 from the database and the emulator, and report.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import sys
import time
from pathlib import Path
from typing import Final

from sqlalchemy import select

from agent_workflow.store import Store
from agent_workflow.store.schema import deliveries, phase_runs
from chaos.checks import (
    DbView,
    ForgeIssue,
    RoundLimits,
    Violation,
    forge_changes,
    forge_issues,
    judge,
)
from chaos.config import ChaosConfig
from chaos.driver import Users
from chaos.injector import Injector
from chaos.report import ChaosReport, IssueSummary
from chaos.system import SystemUnderTest, system_under_test
from chaos.world import REPO, Timeline
from github_emulator import EmulatorServer
from github_emulator.client import Counters, EmulatorAdmin

SETTLE_POLL_S: Final = 0.5
"""How often settling looks whether everything is final and routed."""

PERMISSION_GET: Final = "GET /repos/{owner}/{repo}/collaborators/{username}/permission"


def run_chaos(config: ChaosConfig) -> ChaosReport:
    """Run one chaos run to the end (blocking); the report's `exit_code` is the verdict."""
    return asyncio.run(run_chaos_async(config))


async def run_chaos_async(config: ChaosConfig) -> ChaosReport:
    """`run_chaos` for callers that already run an event loop (the pytest test)."""
    timeline = Timeline()
    async with system_under_test(config) as sut:
        timeline.add(f"aw serve and {config.workers} workers started (Redis :{sut.redis.port})")
        report = await _run(sut, timeline)
    report.database_url = sut.database_url if config.keep else None
    # Next to the process logs, so a failed run (in CI too) can be read afterwards.
    await asyncio.to_thread((sut.workdir / "report.json").write_text, report.to_json())
    return report


async def _run(sut: SystemUnderTest, timeline: Timeline) -> ChaosReport:
    config, emu, store, cluster, redis = sut.config, sut.emu, sut.store, sut.cluster, sut.redis
    workdir = sut.workdir
    rng = random.Random(config.seed)
    users = Users(config, emu.admin, store, timeline, random.Random(rng.getrandbits(64)))
    await users.create_issues()
    injector = Injector(
        config,
        random.Random(rng.getrandbits(64)),
        cluster,
        redis,
        emu.admin,
        users,
        store,
        sut.queue,
        timeline,
    )
    driving_over = asyncio.Event()
    injecting = asyncio.create_task(injector.run(driving_over), name="chaos-injector")
    reporting = asyncio.create_task(_progress(config, users, injector, timeline, driving_over))
    try:
        await users.run(time.monotonic() + config.timeout_s)
    finally:
        driving_over.set()
        await injecting
        await injector.finish()
        await reporting
    timeline.add(
        f"driving over: {sum(s.done_at is not None for s in users.issues.values())} issues done"
    )

    settled = await _settle(store, emu, config.settle_timeout_s)
    timeline.add("settled" if settled else "did not settle in time")
    before = await forge_snapshot(emu.admin)
    await asyncio.sleep(config.effective_quiet_s)
    await emu.admin.wait_webhooks()
    after = await forge_snapshot(emu.admin)
    timeline.add(f"quiet period of {config.effective_quiet_s:.1f} s over")

    db = await DbView.load(store)
    limits = RoundLimits(config.max_revise_rounds, config.max_repair_rounds)
    verdict = judge(users.issues.keys(), db, after, injector.kills, injector.stops, limits)
    for change in forge_changes(before, after):
        verdict.violations.append(
            Violation("G5", f"GitHub changed during the quiet period: {change}")
        )
    counters = await emu.admin.counters()
    return ChaosReport(
        seed=config.seed,
        config=config.as_json(),
        duration_s=round(timeline.now(), 1),
        issues=_summaries(users, db, after),
        events_sent=len(users.sent),
        webhooks_total=len(emu.emulator.webhooks.deliveries),
        duplicates_delivered=injector.duplicate_copies,
        duplicate_jobs=injector.duplicate_jobs,
        kills=injector.done["kill"],
        stops=injector.done["stop"],
        redis_restarts=redis.restarts,
        faults_armed=dict(injector.faults_armed),
        faults_fired=dict(counters.faults),
        github_requests=_github_requests(counters),
        unexpected_exits=[
            f"{e.owner} exited with {e.returncode} (log {e.log_path})"
            for e in cluster.unexpected_exits
        ],
        unacknowledged_webhooks=users.unacknowledged,
        operator_redeliveries=users.operator_redeliveries,
        duplicates_found=verdict.duplicates_found,
        lost=verdict.lost,
        stuck=verdict.stuck,
        violations=verdict.violations,
        stats={
            **verdict.stats,
            "injections_skipped": dict(injector.skipped),
            "zombie_leases_taken_over": sum(len(s.taken_over) for s in injector.stops),
            "user_action_errors": users.errors,
            "log_findings": log_findings(workdir),
        },
        timeline=timeline.entries,
        workdir=str(workdir),
    )


async def forge_snapshot(admin: EmulatorAdmin) -> dict[int, ForgeIssue]:
    """The chaos repository's issues and PRs, with each PR's review comments and replies."""
    state = await admin.state()
    repo = next((r for r in state["repos"] if r["full_name"] == REPO), None)
    pulls = [int(i["number"]) for i in (repo or {}).get("issues", []) if i.get("pull")]
    review_comments = {
        n: [dataclasses.asdict(c) for c in await admin.review_comments(REPO, n)] for n in pulls
    }
    return forge_issues(state, review_comments)


async def _progress(
    config: ChaosConfig, users: Users, injector: Injector, timeline: Timeline, over: asyncio.Event
) -> None:
    """A status line on stderr every `progress_s` seconds, for long runs."""
    if config.progress_s <= 0:
        return
    while not over.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(over.wait(), config.progress_s)
        done = sum(s.done_at is not None for s in users.issues.values())
        spent = ", ".join(f"{k} {n}" for k, n in sorted(injector.done.items()))
        print(
            f"[chaos {timeline.now():6.1f} s] issues done {done}/{len(users.issues)}; injected: {spent}",
            file=sys.stderr,
            flush=True,
        )


async def _settle(store: Store, emu: EmulatorServer, timeout_s: float) -> bool:
    """Wait until every delivery is routed and every phase final with its effects done."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await emu.admin.wait_webhooks()
        async with store.engine.connect() as conn:
            unrouted = (
                await conn.execute(
                    select(deliveries.c.id).where(deliveries.c.routed_at.is_(None)).limit(1)
                )
            ).first()
            open_run = (
                await conn.execute(
                    select(phase_runs.c.id)
                    .where(
                        (phase_runs.c.status.not_in(("complete", "blocked", "failed")))
                        | phase_runs.c.effects_done.is_(False)
                    )
                    .limit(1)
                )
            ).first()
        if unrouted is None and open_run is None:
            return True
        await asyncio.sleep(SETTLE_POLL_S)
    return False


def log_findings(workdir: Path) -> dict[str, int]:
    """Warnings, errors and tracebacks per process log: worth a look even when nothing broke."""
    found: dict[str, int] = {}
    for path in sorted(workdir.glob("*.log")):
        if path.name == "redis.log":
            continue
        text = path.read_text(errors="replace")
        for what, needle in (
            ("errors", '"level": "error"'),
            ("warnings", '"level": "warning"'),
            ("tracebacks", "Traceback (most recent call last)"),
        ):
            if n := text.count(needle):
                found[f"{path.stem} {what}"] = n
    return found


def _github_requests(counters: Counters) -> dict[str, int]:
    permission = counters.requests.get(PERMISSION_GET, 0)
    return {
        "mutations": counters.mutations,
        "reads": counters.reads - permission,
        "permission_reads": permission,
    }


def _summaries(users: Users, db: DbView, forge: dict[int, ForgeIssue]) -> list[IssueSummary]:
    task_issue = {t.id: t.issue_number for t in db.tasks}
    phases: dict[int, dict[str, str]] = {}
    for run in sorted(db.runs, key=lambda r: r.id):
        phases.setdefault(task_issue[run.task_id], {})[run.phase] = (
            f"{run.status} (attempt {run.attempt})"
        )
    rounds: dict[int, list[str]] = {}
    for r in db.rounds:
        rounds.setdefault(task_issue[r.task_id], []).append(
            f"{r.phase} {r.number} ({r.trigger_key.partition(':')[0]})"
        )
    pulls: dict[int, list[int]] = {}
    for issue in forge.values():
        if issue.head is not None and issue.head.startswith("agent/issue-"):
            pulls.setdefault(int(issue.head.rpartition("-")[2]), []).append(issue.number)
    out = []
    for number, state in sorted(users.issues.items()):
        view = forge.get(number)
        lifecycle = None
        if state.done_at is not None and state.started_at is not None:
            lifecycle = round(state.done_at - state.started_at, 1)
        out.append(
            IssueSummary(
                issue=number,
                steer=list(state.steer),
                bot_comments=len(view.bot_comments) if view else 0,
                pull_requests=pulls.get(number, []),
                labels=sorted(view.labels) if view else [],
                phases=phases.get(number, {}),
                lifecycle_s=lifecycle,
                rounds=rounds.get(number, []),
                round_steps=list(state.rounds),
            )
        )
    return out
