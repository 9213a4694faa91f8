"""Deployment-wide agent limits (issue 12 item 5): slots leased in the database, and the
daily budget. Several cores over separate `Store`s stand for separate workers."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from agent_workflow.core.limits import DAY_S, AgentLimits, day_start
from agent_workflow.core.model import Phase, PhaseStatus
from agent_workflow.core.ports import ModelUsage
from agent_workflow.core.runner import Executed
from agent_workflow.service.sweeper import Sweeper
from agent_workflow.status import collect_limits, collect_status
from agent_workflow.store import Store, connect
from agent_workflow.store.schema import agent_runs, phase_runs, tasks
from agent_workflow.testing.agent import ScriptedAgent
from tests.conftest import FakeClock
from tests.core.helpers import LEASE_S, make_core
from tests.service.test_poison import RecordingQueue
from tests.support.events import REPO, task_info

ONE_PER_REPO = AgentLimits(max_agents=4, max_agents_per_repo=1, daily_budget_usd=None)


class WallClock:
    """The real time, for runs whose intervals are measured (a fake clock stands still)."""

    def __call__(self) -> float:
        return time.time()


@pytest.fixture
async def four_stores(db_url: str) -> AsyncIterator[list[Store]]:
    """Four stores on the same database: four workers' connection pools."""
    stores = [await connect(db_url) for _ in range(4)]
    yield stores
    for s in stores:
        await s.close()


async def _intervals(store: Store, repo: str) -> list[tuple[float, float, str]]:
    stmt = (
        select(agent_runs.c.started_at, agent_runs.c.duration_s, agent_runs.c.owner)
        .join(phase_runs, phase_runs.c.id == agent_runs.c.phase_run_id)
        .join(tasks, tasks.c.id == phase_runs.c.task_id)
        .where(tasks.c.repo == repo)
        .order_by(agent_runs.c.started_at)
    )
    async with store.engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [(r.started_at, r.started_at + r.duration_s, r.owner) for r in rows]


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # workers race on PostgreSQL
async def test_slots__four_workers_one_repository_never_two_agents_at_once(
    four_stores: list[Store],
) -> None:
    """Four workers (own stores, own runners), `AW_MAX_AGENTS_PER_REPO=1`, five issues of
    one repository started at once: the agents ran one after the other, measured from
    `agent_runs` (start, duration), and every plan completed."""
    clock = WallClock()
    cores = [
        make_core(
            s,
            clock,  # type: ignore[arg-type]
            agent=ScriptedAgent(duration_s=0.3),
            owner=f"worker-{n}",
            limits=ONE_PER_REPO,
        )
        for n, s in enumerate(four_stores)
    ]
    issues = range(1, 6)
    found = [await four_stores[0].tasks.ensure(task_info(i), clock()) for i in issues]
    results = await asyncio.gather(
        *(
            cores[n % 4].runner.execute(task, Phase.PLAN, trigger=f"d-{task.issue_number}")
            for n, task in enumerate(found)
        )
    )
    assert {r.status for r in results} == {PhaseStatus.COMPLETE}
    runs = await _intervals(four_stores[0], REPO)
    assert len(runs) == 5
    assert len({owner for _, _, owner in runs}) > 1, "the runs were not spread over workers"
    for (_, end, _), (start, _, _) in itertools.pairwise(runs):
        assert start >= end, f"two agents at once on {REPO}: {runs}"
    async with four_stores[0].engine.connect() as conn:
        held = (await conn.execute(select(agent_runs.c.id))).all()
    assert len(held) == 5
    assert (await collect_limits(four_stores[0], clock(), None))["slots"] == []


async def test_slots__a_dead_workers_slot_is_taken_over_after_its_lease(
    store: Store, clock: FakeClock
) -> None:
    """Window: a worker is SIGKILLed while its agent holds the repository's only slot (it
    never releases it). Another worker's agent waits, and takes the slot once the dead
    one's lease has passed, not before."""
    slots = store.slots
    take = {"max_total": 4, "max_per_repo": 1, "lease_s": LEASE_S, "phase_run_id": None}
    dead = await slots.acquire(REPO, "worker-dead", **take, now=clock())
    assert dead is not None
    assert await slots.acquire(REPO, "worker-b", **take, now=clock()) is None
    assert await slots.acquire("octo/other", "worker-b", **take, now=clock()) is not None
    clock.advance(LEASE_S)  # the lease's last moment: still live
    assert await slots.acquire(REPO, "worker-b", **take, now=clock()) is None
    clock.advance(1.0)
    assert not await slots.renew(dead, LEASE_S, clock()), "a dead worker's lease came back"
    assert await slots.acquire(REPO, "worker-b", **take, now=clock()) is not None


async def test_slots__the_global_cap_counts_every_repository(
    store: Store, clock: FakeClock
) -> None:
    take = {"max_total": 2, "max_per_repo": 2, "lease_s": LEASE_S, "phase_run_id": None}
    first = await store.slots.acquire("a/one", "w", **take, now=clock())
    assert first is not None
    assert await store.slots.acquire("b/two", "w", **take, now=clock()) is not None
    assert await store.slots.acquire("c/three", "w", **take, now=clock()) is None
    await store.slots.release(first, clock())
    assert await store.slots.acquire("c/three", "w", **take, now=clock()) is not None


async def _spend(store: Store, clock: FakeClock, usd: float) -> None:
    task = await store.tasks.ensure(task_info(99), clock())
    await store.usage.record(
        ModelUsage("req-1", task.id, Phase.PLAN, 1, "claude-sonnet-4", cost_usd=usd), clock()
    )


async def test_daily_budget__spent_budget_makes_new_attempts_wait_until_the_day_rolls_over(
    store: Store,
) -> None:
    """Spending past `AW_DAILY_BUDGET_USD` (metered by the model proxy): the next phase's
    agent does not start; the phase is pending, unclaimed, `aw status` says why, and the
    sweeper leaves it. After 00:00 UTC the sweeper dispatches it and the agent runs."""
    clock = FakeClock(day_start(1_000_000.0) + DAY_S - 3_600)  # 23:00 UTC
    agent = ScriptedAgent()
    limits = AgentLimits(max_agents=4, max_agents_per_repo=2, daily_budget_usd=5.0)
    core = make_core(store, clock, agent=agent, limits=limits)
    queue = RecordingQueue()
    sweeper = Sweeper(  # type: ignore[arg-type]
        store,
        queue,
        clock,
        grace_s=0,
        interval_s=60,
        retention_s=30 * DAY_S,
        tidy_interval_s=3_600,
        janitor=None,
        daily_budget_usd=limits.daily_budget_usd,
    )
    await _spend(store, clock, 5.5)
    task = await store.tasks.ensure(task_info(7), clock())

    waited = await core.runner.execute(task, Phase.PLAN, trigger="d-7")

    assert waited.result is Executed.WAITING
    assert agent.calls == []
    run = await store.phases.get(task.id, Phase.PLAN)
    assert run is not None
    assert run.status is PhaseStatus.PENDING
    assert run.lease_owner is None
    shown = await collect_status(store, clock(), limits.daily_budget_usd)
    (plan,) = next(t for t in shown if t["issue"] == 7)["phases"]
    assert "daily budget" in (plan["waiting"] or "")
    clock.advance(60)
    assert (await sweeper.run_once()).phases == 0
    assert await core.runner.execute(task, Phase.PLAN) == waited  # a redelivery waits too

    clock.advance(3_600)  # 00:01 UTC the next day
    assert (await sweeper.run_once()).phases == 1
    done = await core.runner.execute(task, Phase.PLAN)

    assert done.result is Executed.SETTLED
    assert done.status is PhaseStatus.COMPLETE
    assert len(agent.calls) == 1
    shown = await collect_status(store, clock(), limits.daily_budget_usd)
    assert next(t for t in shown if t["issue"] == 7)["phases"][0]["waiting"] is None


async def test_daily_budget__reported_costs_count_without_the_proxy(store: Store) -> None:
    """An agent without the model proxy (scripted, command) reports its cost: today's runs
    count, yesterday's do not."""
    clock = FakeClock(day_start(1_000_000.0) + 60)
    core = make_core(store, clock, agent=ScriptedAgent(cost_usd=3.0))
    task = await store.tasks.ensure(task_info(7), clock())
    await core.runner.execute(task, Phase.PLAN, trigger="d-7")
    assert await store.usage.spent_since(day_start(clock())) == pytest.approx(3.0)
    clock.advance(DAY_S)
    assert await store.usage.spent_since(day_start(clock())) == 0.0
