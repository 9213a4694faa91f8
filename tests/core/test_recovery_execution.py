"""`PhaseRunner.execute` at each recovery point, and phases that follow an unsettled one.

Each test seeds one recovery point and asserts the typed `Execution` and what
reached the forge; the ordering tests name the crash window they cover.
"""

from __future__ import annotations

import pytest
from sqlalchemy import update

from agent_workflow.core.errors import PhaseBusy, UncertainOutcome
from agent_workflow.core.ledger import UNCERTAIN_ROUNDS
from agent_workflow.core.model import Intent, Phase, PhaseStatus, TaskInfo
from agent_workflow.core.ports import AgentRequest, AgentResult, Outcome
from agent_workflow.core.routed import Action
from agent_workflow.core.runner import Executed
from agent_workflow.store import Store
from agent_workflow.store.schema import phase_runs
from agent_workflow.testing import MemoryForge, ScriptedAgent
from tests.conftest import FakeClock
from tests.core.helpers import LEASE_S, make_core, seed_claimed, seed_finished
from tests.support.events import REPO, event


async def test_execute__no_run_is_not_started(store: Store, clock: FakeClock) -> None:
    core = make_core(store, clock)
    task = await store.tasks.ensure(TaskInfo(REPO, 7), clock())
    execution = await core.runner.execute(task, Phase.PLAN)
    assert execution.result is Executed.NOT_STARTED


async def test_execute__claimable_runs_to_settled(store: Store, clock: FakeClock) -> None:
    forge, agent = MemoryForge(), ScriptedAgent()
    core = make_core(store, clock, forge=forge, agent=agent)
    task = await store.tasks.ensure(TaskInfo(REPO, 7), clock())
    await store.phases.ensure(task.id, Phase.PLAN, "d-1", clock())
    execution = await core.runner.execute(task, Phase.PLAN)
    assert (execution.result, execution.status) == (Executed.SETTLED, PhaseStatus.COMPLETE)
    assert len(agent.calls) == 1
    assert forge.log[-1] == "add_labels:agent-planned"


async def test_execute__held_elsewhere_does_nothing(store: Store, clock: FakeClock) -> None:
    forge, agent = MemoryForge(), ScriptedAgent()
    core = make_core(store, clock, forge=forge, agent=agent)
    seeded = await seed_claimed(store, clock, owner="elsewhere")
    execution = await core.runner.execute(seeded.task, Phase.PLAN)
    assert (execution.result, execution.status) == (Executed.HELD_ELSEWHERE, PhaseStatus.ACTIVE)
    assert agent.calls == []
    assert forge.log == []


async def test_execute__effects_held_elsewhere_does_nothing(store: Store, clock: FakeClock) -> None:
    forge = MemoryForge()
    core = make_core(store, clock, forge=forge)
    seeded = await seed_finished(store, clock, PhaseStatus.COMPLETE, owner="elsewhere")
    execution = await core.runner.execute(seeded.task, Phase.PLAN)
    assert execution.result is Executed.HELD_ELSEWHERE
    assert forge.log == []


async def test_execute__effects_outstanding_performs_them(store: Store, clock: FakeClock) -> None:
    forge, agent = MemoryForge(), ScriptedAgent()
    core = make_core(store, clock, forge=forge, agent=agent)
    seeded = await seed_finished(store, clock, PhaseStatus.BLOCKED, owner="dead", reason="stuck")
    clock.advance(LEASE_S + 1)
    execution = await core.runner.execute(seeded.task, Phase.PLAN)
    assert (execution.result, execution.status) == (Executed.SETTLED, PhaseStatus.BLOCKED)
    assert agent.calls == []
    assert forge.log[-1] == "add_labels:agent-blocked"


async def test_execute__settled_makes_no_call(store: Store, clock: FakeClock) -> None:
    forge = MemoryForge()
    core = make_core(store, clock, forge=forge)
    await core.router.route(event(Intent.START_PLAN))
    calls = sum(forge.calls.values())
    task = await store.tasks.find(REPO, 7)
    assert task is not None
    execution = await core.runner.execute(task, Phase.PLAN)
    assert (execution.result, execution.status) == (Executed.SETTLED, PhaseStatus.COMPLETE)
    assert sum(forge.calls.values()) == calls


async def test_execute__fence_taken_while_the_agent_ran_is_lease_lost(
    store: Store, clock: FakeClock
) -> None:
    """Window: another worker claimed the phase (fence+1) while this one's agent ran."""

    class TakenOver:
        calls: list[AgentRequest] = []

        async def run(self, request: AgentRequest) -> AgentResult:
            async with store.engine.begin() as conn:
                await conn.execute(update(phase_runs).values(fence=phase_runs.c.fence + 1))
            return AgentResult(Outcome.SUCCESS, text="stale")

    forge = MemoryForge()
    core = make_core(store, clock, forge=forge, agent=TakenOver())  # type: ignore[arg-type]
    routed = await core.router.route(event(Intent.START_PLAN))
    assert (routed.action, routed.result) == (Action.RAN, Executed.LEASE_LOST)
    assert forge.log == []


async def _plan_killed_before_its_label(store: Store, clock: FakeClock, forge: MemoryForge) -> None:
    """The plan completes; its comment is posted, then every label request fails until the
    worker gives up (as if killed): the plan is complete with `agent-planned` outstanding."""
    core = make_core(store, clock, forge=forge)
    forge.inject("add_labels", "fail", times=UNCERTAIN_ROUNDS)
    with pytest.raises(UncertainOutcome):
        await core.router.route(event(Intent.START_PLAN, delivery="d-plan"))
    assert forge.labels[(REPO, 7)] == set()


async def test_approve__first_finishes_the_plans_outstanding_label(
    store: Store, clock: FakeClock
) -> None:
    """Window: a kill during the plan's effects, then `/approve`. The plan's label lands
    before the deliver phase's pull request (it used to land after it), exactly once."""
    forge = MemoryForge()
    await _plan_killed_before_its_label(store, clock, forge)
    clock.advance(LEASE_S + 1)
    core = make_core(store, clock, forge=forge)

    routed = await core.router.route(event(Intent.APPROVE, delivery="d-approve"))

    assert routed.status is PhaseStatus.COMPLETE
    order = [entry.split(":")[0] + ":" + entry.split(":")[1] for entry in forge.log]
    planned = order.index("add_labels:agent-planned")
    opened = next(i for i, e in enumerate(order) if e.startswith("open_pull_request"))
    assert planned < opened
    assert order.count("add_labels:agent-planned") == 1


async def test_approve__while_the_plans_effects_are_held_elsewhere_is_busy(
    store: Store, clock: FakeClock
) -> None:
    """Window: the plan's holder is still performing its effects when `/approve` arrives:
    nothing starts; the delivery stays unrouted (`PhaseBusy`) and is routed again later."""
    forge = MemoryForge()
    await _plan_killed_before_its_label(store, clock, forge)  # its effects lease is still live
    core = make_core(store, clock, forge=forge, agent=ScriptedAgent())
    mutations = len(forge.log)

    with pytest.raises(PhaseBusy):
        await core.router.route(event(Intent.APPROVE, delivery="d-approve"))

    assert len(forge.log) == mutations
    task = await store.tasks.find(REPO, 7)
    assert task is not None
    assert await store.phases.get(task.id, Phase.DELIVER) is None
