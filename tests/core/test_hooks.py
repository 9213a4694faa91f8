"""Hooks called twice perform their effects once; a new attempt gets its own effects."""

from __future__ import annotations

import pytest

from agent_workflow.core.errors import PhaseBusy
from agent_workflow.core.hooks import HookContext, on_phase_blocked, on_plan_complete
from agent_workflow.core.ledger import Ledger, Scope
from agent_workflow.core.model import Intent, Phase, PhaseStatus
from agent_workflow.core.ports import Outcome
from agent_workflow.store import Store
from agent_workflow.testing.agent import ScriptedAgent
from agent_workflow.testing.forge import MemoryForge
from tests.conftest import FakeClock
from tests.core.helpers import LEASE_S, make_core, seed_finished
from tests.support.events import REPO, event


async def _ctx(store: Store, core_ledger: Ledger, phase: Phase) -> HookContext:
    task = await store.tasks.find(REPO, 7)
    assert task is not None
    run = await store.phases.get(task.id, phase)
    assert run is not None

    async def set_pr(_: int) -> None:
        return None

    return HookContext(
        task, run, core_ledger, Scope(task.id, phase.value, run.attempt, run.guard), set_pr
    )


async def test_plan_complete_hook__twice_posts_once(store: Store, clock: FakeClock) -> None:
    forge = MemoryForge()
    core = make_core(store, clock, forge=forge)
    await core.router.route(event(Intent.START_PLAN))
    ctx = await _ctx(store, core.ledger, Phase.PLAN)

    await on_plan_complete(ctx)
    await on_plan_complete(ctx)

    assert len(forge.comments[(REPO, 7)]) == 1
    assert forge.calls["create_comment"] == 1
    assert forge.calls["add_labels"] == 1


async def test_blocked_hook__once_per_attempt(store: Store, clock: FakeClock) -> None:
    forge = MemoryForge()
    agent = ScriptedAgent(outcomes={Phase.PLAN: Outcome.BLOCKED})
    core = make_core(store, clock, forge=forge, agent=agent)

    first = await core.router.route(event(Intent.START_PLAN))
    assert first.status is PhaseStatus.BLOCKED
    ctx = await _ctx(store, core.ledger, Phase.PLAN)
    await on_phase_blocked(ctx)
    await on_phase_blocked(ctx)
    blocked = [c for c in forge.comments[(REPO, 7)] if "agent-blocked" in c.body]
    assert len(blocked) == 1

    retry = event(Intent.RETRY)
    second = await core.router.route(retry)
    await core.router.route(retry)  # the same /retry delivered again: no third attempt
    assert second.status is PhaseStatus.BLOCKED
    ctx = await _ctx(store, core.ledger, Phase.PLAN)
    assert ctx.run.attempt == 2
    await on_phase_blocked(ctx)

    blocked = [c for c in forge.comments[(REPO, 7)] if "agent-blocked" in c.body]
    assert len(blocked) == 2
    assert "attempt 1" in blocked[0].body
    assert "attempt 2" in blocked[1].body
    assert len(agent.calls) == 2
    assert [c.attempt for c in agent.calls] == [1, 2]
    assert forge.labels[(REPO, 7)] == {"agent-blocked"}


async def test_retry__after_block_completes_and_clears_label(
    store: Store, clock: FakeClock
) -> None:
    forge = MemoryForge()
    agent = ScriptedAgent()
    core = make_core(store, clock, forge=forge, agent=agent)
    blocking = event(Intent.START_PLAN, body="agent-test: block plan")

    assert (await core.router.route(blocking)).status is PhaseStatus.BLOCKED
    assert (await core.router.route(event(Intent.RETRY))).status is PhaseStatus.COMPLETE
    assert (await core.router.route(event(Intent.RETRY))).action == "noop"  # nothing blocked now

    assert forge.labels[(REPO, 7)] == {"agent-planned"}
    assert len(agent.fresh_starts) == 2  # one per attempt
    assert len({c.session_id for c in agent.calls}) == 2


async def test_retry__while_blocked_effects_run_elsewhere_is_routed_later(
    store: Store, clock: FakeClock
) -> None:
    """Window: `/retry` arrives while another worker still performs the blocked attempt's effects.

    The event must not be dropped: routing raises `PhaseBusy` so the delivery stays
    unrouted and is routed again (queue retry or sweeper), and then it starts attempt 2.
    """
    forge = MemoryForge()
    core = make_core(store, clock, forge=forge)
    seeded = await seed_finished(store, clock, PhaseStatus.BLOCKED, owner="other", reason="stuck")
    task = seeded.task  # "other" holds the lease and is posting the blocked effects
    retry = event(Intent.RETRY)

    with pytest.raises(PhaseBusy):
        await core.router.route(retry)

    clock.advance(LEASE_S + 1)  # "other" died; its effects lease expired
    routed = await core.router.route(retry)
    assert routed.status is PhaseStatus.COMPLETE
    final = await store.phases.get(task.id, Phase.PLAN)
    assert final is not None
    assert final.attempt == 2
    assert len([c for c in forge.comments[(REPO, 7)] if "agent-blocked" in c.body]) == 1
