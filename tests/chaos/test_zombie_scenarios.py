"""Targeted zombie scenarios on real processes: a worker frozen past its lease must not act.

Fixed by checking the lease (`agent_workflow.core.lease`) right before every mutation is
sent; the history of the window follows.

Found by the long chaos run (seed 7): a worker whose comment POST was answered
with a secondary rate limit sleeps `retry-after` inside the GitHub adapter. If
it is frozen during that sleep (SIGSTOP, a VM pause, a long GC) past its phase
lease, another worker takes the effects over, reconciles (no comment yet:
the rate-limited request was not applied), posts the comment and records it.
When the zombie wakes after its retry fell due, the retry's timer and the
heartbeat's are both expired; the retry sends the POST before the heartbeat's
database round trip reports the lost lease: a second comment with the same
effect marker. Its `done` write is fenced and refused, but the comment is on
GitHub (G3, G5). Woken before the retry is due, the heartbeat wins and
nothing is sent, which is why the freeze here outlasts the retry-after.

The same window opens in the ledger's own backoff after an uncertain outcome
(`Ledger.perform` sleeps before reconciling and resending): a CI chaos run
froze a worker there while it re-added `agent-blocked`; meanwhile the phase
was retried and completed and the label removed, and the woken zombie added
it back (the issue ended labelled blocked although done).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from chaos.config import DEFAULT_PG_ADMIN_URL, ChaosConfig
from chaos.system import SystemUnderTest, system_under_test
from chaos.world import BOT, MARKER_RE, REPO, USER
from sqlalchemy import select

from agent_workflow.store.schema import phase_runs

RETRY_AFTER_S = 4
"""Long enough to freeze the worker inside the wait, short enough for a quick test."""


async def eventually(
    what: str, check: Callable[[], Awaitable[bool]], timeout_s: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(what)


async def plan_effects_holder(sut: SystemUnderTest) -> str | None:
    """The worker performing the plan's effects (result recorded, effects outstanding)."""
    stmt = select(phase_runs.c.lease_owner).where(
        phase_runs.c.phase == "plan",
        phase_runs.c.status == "complete",
        phase_runs.c.effects_done.is_(False),
    )
    async with sut.store.engine.connect() as conn:
        return (await conn.execute(stmt)).scalar()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(120)
async def test_zombie__woken_inside_a_rate_limit_wait_posts_no_second_comment(
    tmp_path: Path,
) -> None:
    config = ChaosConfig(
        workers=2,
        lease_s=2.0,
        heartbeat_s=0.5,
        lock_duration_ms=2_000,
        stalled_interval_ms=1_000,
        sweep_interval_s=0.5,
        sweep_grace_s=1.0,
        agent_duration_s=0.2,
        agent_jitter_s=0.0,
        pg_admin_url=os.environ.get("AW_TEST_POSTGRES_URL", DEFAULT_PG_ADMIN_URL),
        workdir=tmp_path,
        # The one-shot rate limit must meet the plan comment, not the progress comment
        # posted before it (live progress has its own zombie test, tests/core).
        extra_env={"AW_PROGRESS_INTERVAL_S": "0"},
    )
    async with system_under_test(config) as sut:
        admin = sut.emu.admin
        await admin.add_fault(
            "POST",
            r"/issues/\d+/comments$",
            "secondary_rate_limit",
            times=1,
            retry_after=RETRY_AFTER_S,
        )
        issue = await admin.create_issue(REPO, "Zombie", body="Do it.", author=USER)
        await admin.add_label(REPO, issue, "agent", user=USER)

        async def fault_fired() -> bool:
            return sum((await admin.counters()).faults.values()) > 0

        await eventually("the rate limit to hit the plan comment", fault_fired)
        retry_due = time.monotonic() + RETRY_AFTER_S
        owner = await plan_effects_holder(sut)
        assert owner is not None
        slot = next(s for s in sut.cluster.slots if s.owner == owner)
        # Frozen inside the retry-after wait, for longer than the lease: another worker
        # takes the effects over and posts the plan comment.
        await sut.cluster.stop(slot)

        async def plan_commented() -> bool:
            return any("Implementation plan" in c.body for c in await admin.comments(REPO, issue))

        await eventually("another worker to post the plan comment", plan_commented)
        # Wake it once its retry is due: its wait and its heartbeat's sleep have both
        # expired, and the event loop decides which runs first.
        await asyncio.sleep(max(0.0, retry_due - time.monotonic()) + 0.5)
        await sut.cluster.cont(slot)
        await asyncio.sleep(2 * config.lease_s)

        comments = [c for c in await admin.comments(REPO, issue) if c.author == BOT]
        keys = [m.group(1) for c in comments if (m := re.search(MARKER_RE, c.body))]
        assert len(keys) == len(set(keys)), f"duplicate effect markers: {keys}"
