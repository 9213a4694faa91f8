"""Races on real concurrent connections (G1) and ensure-never-resets."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from agent_workflow.core.model import Intent, Phase, PhaseStatus, TaskInfo
from agent_workflow.store import Store, connect
from agent_workflow.store.schema import phase_runs, tasks
from tests.conftest import FakeClock
from tests.core.helpers import make_core
from tests.support.events import REPO, event

CONCURRENT = 24


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_ensure_task__concurrent_on_separate_connections(db_url: str) -> None:
    """Many processes' worth of connections ensure the same task at once: one row, no error."""
    stores = [await connect(db_url, migrate=False) for _ in range(CONCURRENT)]
    try:
        info = TaskInfo(repo=REPO, issue_number=42, title="race")
        barrier = asyncio.Barrier(CONCURRENT)

        async def ensure(store: Store) -> int:
            async with store.engine.connect():  # open the connection before the barrier
                pass
            await barrier.wait()
            task = await store.tasks.ensure(info, 1.0)
            run = await store.phases.ensure(task.id, Phase.PLAN, "d", 1.0)
            return run.id

        run_ids = await asyncio.gather(*(ensure(s) for s in stores))

        assert len(set(run_ids)) == 1
        async with stores[0].engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(tasks))).scalar_one() == 1
            assert (
                await conn.execute(select(func.count()).select_from(phase_runs))
            ).scalar_one() == 1
    finally:
        for s in stores:
            await s.close()


async def test_claim__concurrent_claims_one_winner(db_url: str) -> None:
    stores = [await connect(db_url, migrate=False) for _ in range(8)]
    try:
        task = await stores[0].tasks.ensure(TaskInfo(repo=REPO, issue_number=1), 1.0)
        run = await stores[0].phases.ensure(task.id, Phase.PLAN, "d", 1.0)
        claims = await asyncio.gather(
            *(
                s.phases.claim(run.task_id, run.phase, f"w{i}", 30.0, 2.0)
                for i, s in enumerate(stores)
            )
        )
        winners = [c for c in claims if c is not None]
        assert len(winners) == 1
        assert winners[0].fence == 1
    finally:
        for s in stores:
            await s.close()


async def test_ensure_task__never_resets_a_complete_plan(store: Store, clock: FakeClock) -> None:
    core = make_core(store, clock)
    await core.router.route(event(Intent.START_PLAN))
    task = await store.tasks.find(REPO, 7)
    assert task is not None

    again = await store.tasks.ensure(TaskInfo(repo=REPO, issue_number=7, title="changed"), clock())
    run = await store.phases.ensure(task.id, Phase.PLAN, "another-delivery", clock())

    assert again.id == task.id
    assert again.title == task.title
    assert run.status is PhaseStatus.COMPLETE
    assert run.effects_done
    assert run.trigger_delivery != "another-delivery"
