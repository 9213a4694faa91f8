"""The bounded chaos run of the CI suite: real processes, seeded faults, zero violations.

One `aw serve` and two `aw worker`s on a private Redis and a fresh PostgreSQL
database drive eight issues through label → plan → /approve → PR → merge →
summary while workers are SIGKILLed (mid-phase when one holds a lease) and
restarted, one is frozen with SIGSTOP past its lease and BullMQ lock and then
woken (a zombie), Redis is killed and restarted empty, GitHub drops responses
after applying them, answers 502 before applying, and rate-limits, webhooks are
redelivered (also two copies at once) and jobs are enqueued twice so two
workers race. Before merging, pull requests get `changes_requested` reviews and
failing checks (revise and repair rounds, whose webhooks are among those
redelivered). Then G1–G5 and the rounds' R1–R3 are checked from the database and
the emulator.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from chaos.config import DEFAULT_PG_ADMIN_URL

from chaos import ChaosConfig, run_chaos_async

SEED = 20240611


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.timeout(170)
async def test_chaos__seeded_run_keeps_every_guarantee(tmp_path: Path) -> None:
    config = ChaosConfig(
        issues=8,
        workers=2,
        seed=SEED,
        kills=3,
        stops=1,
        redis_restarts=1,
        github_faults=6,
        redeliveries=6,
        queue_duplicates=4,
        timeout_s=90.0,
        settle_timeout_s=30.0,
        pg_admin_url=os.environ.get("AW_TEST_POSTGRES_URL", DEFAULT_PG_ADMIN_URL),
        workdir=tmp_path,
    )
    report = await run_chaos_async(config)
    assert report.violations == [], f"logs and report.json in {report.workdir}"
    assert [i.lifecycle_s is not None for i in report.issues] == [True] * config.issues
    assert report.duplicates_found == 0
    assert not report.lost
    assert not report.stuck
    # The faults really happened (budgets are spent while issues are in flight).
    assert report.kills >= 2
    assert report.stops == 1
    assert report.redis_restarts == 1
    assert report.duplicates_delivered >= 3
    assert sum(report.faults_fired.values()) >= 1
    # Rounds ran (a review's replies, a repair) under the same faults.
    assert report.stats["revise_rounds"] >= 1
    assert report.stats["repair_rounds"] >= 1
    assert report.stats["review_replies"] >= 2
