"""Deployment-wide agent limits with real worker processes (issue 12 item 5).

`AW_MAX_AGENTS_PER_REPO=1` and four `aw worker` processes (each running up to
`AW_CONCURRENCY` jobs) on PostgreSQL and BullMQ; five issues of one repository labelled at
once. The slots are leases in the database, so the limit holds across the processes: the
agent runs' intervals (from `agent_runs`: start, and the duration the agent measured)
never overlap, and every issue is still planned exactly once.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest
from sqlalchemy import select

from agent_workflow.core.model import Phase
from agent_workflow.store.schema import agent_runs, phase_runs, tasks
from tests.acceptance.system import REPO, Processes, World

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

ISSUES = 5
WORKERS = 4
LIMITED = {
    "AW_MAX_AGENTS_PER_REPO": "1",
    # Long enough that unlimited runs would overlap for certain (five labels arrive within
    # a fraction of a second and four workers take them at once).
    "AW_SCRIPTED_DURATION_S": "1.0",
}


async def _intervals(world: World) -> list[tuple[float, float, str]]:
    stmt = (
        select(agent_runs.c.started_at, agent_runs.c.duration_s, agent_runs.c.owner)
        .join(phase_runs, phase_runs.c.id == agent_runs.c.phase_run_id)
        .join(tasks, tasks.c.id == phase_runs.c.task_id)
        .where(tasks.c.repo == REPO)
        .order_by(agent_runs.c.started_at)
    )
    async with world.store.engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [(r.started_at, r.started_at + r.duration_s, r.owner) for r in rows]


async def test_one_agent_per_repository__four_workers_five_issues__never_two_at_once(
    distributed: World, procs: Processes, serve_url: str
) -> None:
    world = distributed
    procs.env.update(LIMITED)
    await procs.start_serve("serve", serve_url)
    await asyncio.gather(*(procs.start_worker(f"worker-{n}") for n in range(WORKERS)))
    issues = [await world.open_issue(f"Issue {n}") for n in range(ISSUES)]

    await asyncio.gather(*(world.label_agent(i) for i in issues))
    for issue in issues:
        await world.wait_done(issue, Phase.PLAN)

    for issue in issues:
        await world.assert_guarantees(issue, [Phase.PLAN])
    runs = await _intervals(world)
    assert len(runs) == ISSUES
    overlaps = [(a, b) for a, b in itertools.pairwise(runs) if b[0] < a[1]]
    assert overlaps == [], f"two agents ran at once in {REPO}: {overlaps}"
    assert all(end - start >= 1.0 for start, end, _ in runs), runs
    owners = {owner for _, _, owner in runs}
    assert len(owners) >= 2, f"one worker ran everything ({owners}): the test proves nothing"
