"""The router and phase execution against the in-memory forge, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from sqlalchemy import func, select

from agent_workflow.agents.protocol import Outcome
from agent_workflow.agents.scripted import ScriptedAgent
from agent_workflow.core.effects import MARKER_PREFIX, Effect, EffectKind
from agent_workflow.core.hooks import HookContext
from agent_workflow.core.ledger import Scope
from agent_workflow.core.model import Intent, Phase, PhaseStatus
from agent_workflow.errors import LeaseLost
from agent_workflow.forge.memory import MemoryForge
from agent_workflow.forge.protocol import Permission
from agent_workflow.store import Store
from agent_workflow.store.phase_runs import RecordedResult as Recorded
from agent_workflow.store.schema import agent_runs, effects, tasks
from tests.conftest import FakeClock
from tests.core.helpers import LEASE_S, REPO, event, make_core, seed_claimed, seed_finished


async def count(store: Store, table: object) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


async def test_route__same_event_twice_runs_once(store: Store, clock: FakeClock) -> None:
    forge, agent = MemoryForge(), ScriptedAgent()
    core = make_core(store, clock, forge=forge, agent=agent)
    plan = event(Intent.START_PLAN, delivery="d-1")

    first = await core.router.route(plan)
    second = await core.router.route(plan)

    assert first.status is PhaseStatus.COMPLETE
    assert second.status is PhaseStatus.COMPLETE
    assert await count(store, tasks) == 1
    assert len(agent.calls) == 1
    assert forge.calls["create_comment"] == 1
    assert forge.calls["add_labels"] == 1
    assert len(forge.comments[(REPO, 7)]) == 1
    assert forge.reads == 1  # the actor's permission, cached afterwards; no reconciliation reads


async def test_route__full_lifecycle_makes_only_mutations(store: Store, clock: FakeClock) -> None:
    forge, agent = MemoryForge(), ScriptedAgent()
    core = make_core(store, clock, forge=forge, agent=agent)

    await core.router.route(event(Intent.START_PLAN))
    await core.router.route(event(Intent.APPROVE))
    task = await store.tasks.find(REPO, 7)
    assert task is not None
    assert task.pr_number is not None
    await core.router.route(event(Intent.MERGED, pr_number=task.pr_number, actor="bob"))

    phases = {r.phase: r.status for r in await store.phases.for_task(task.id)}
    assert phases == {p: PhaseStatus.COMPLETE for p in Phase}
    assert forge.calls["list_comments"] == 0
    assert forge.calls["find_pull_request"] == 0
    assert forge.calls["open_pull_request"] == 1
    assert len(forge.comments[(REPO, 7)]) == 3  # plan, PR link, lessons summary
    assert all(MARKER_PREFIX in c.body for c in forge.comments[(REPO, 7)])
    assert forge.labels[(REPO, 7)] == {"agent-planned", "agent-delivered", "agent-done"}


async def test_route__approve_before_plan_is_a_noop_with_one_comment(
    store: Store, clock: FakeClock
) -> None:
    forge = MemoryForge()
    agent = ScriptedAgent(outcomes={Phase.PLAN: Outcome.ERROR})
    core = make_core(store, clock, forge=forge, agent=agent)
    task = (await seed_claimed(store, clock, owner="other", start_agent=False)).task

    for _ in range(3):
        routed = await core.router.route(event(Intent.APPROVE))
        assert routed.action == "noop"

    assert await store.phases.get(task.id, Phase.DELIVER) is None
    assert agent.calls == []
    assert len(forge.comments[(REPO, 7)]) == 1


async def test_route__untrusted_actor_and_bots_start_nothing(
    store: Store, clock: FakeClock
) -> None:
    forge, agent = MemoryForge(permissions={"mallory": "read"}), ScriptedAgent()
    core = make_core(store, clock, forge=forge, agent=agent)

    assert (await core.router.route(event(Intent.START_PLAN, actor="mallory"))).action == "ignored"
    assert (await core.router.route(event(Intent.START_PLAN, actor="ci[bot]"))).action == "ignored"

    assert await count(store, tasks) == 0
    assert agent.calls == []
    assert forge.calls["create_comment"] == 0


async def test_execute__reentered_under_live_lease_does_not_start_agent(
    store: Store, clock: FakeClock
) -> None:
    """Another worker holds the phase and is alive: a duplicate must leave it alone (G2)."""
    forge, agent = MemoryForge(), ScriptedAgent()
    core = make_core(store, clock, forge=forge, agent=agent)
    await seed_claimed(store, clock, owner="worker-b", start_agent=False)

    routed = await core.router.route(event(Intent.START_PLAN, delivery="d-1"))

    assert routed.status is PhaseStatus.ACTIVE
    assert agent.calls == []
    assert forge.calls["create_comment"] == 0


async def test_execute__takeover_resumes_the_same_session(store: Store, clock: FakeClock) -> None:
    """The holder died after starting the agent; after its lease expires the next claim resumes."""
    forge, agent = MemoryForge(), ScriptedAgent()
    core = make_core(store, clock, forge=forge, agent=agent)
    seeded = await seed_claimed(store, clock, owner="worker-dead")
    task, dead = seeded.task, seeded.run
    clock.advance(LEASE_S + 1)

    routed = await core.router.route(event(Intent.START_PLAN, delivery="d-1"))

    assert routed.status is PhaseStatus.COMPLETE
    finished = await store.phases.get(task.id, Phase.PLAN)
    assert finished is not None
    assert finished.fence == dead.fence + 1
    assert [c.resume for c in agent.calls] == [True]
    assert agent.calls[0].session_id == finished.session_id
    assert agent.fresh_starts == []
    assert forge.calls["create_comment"] == 1
    assert forge.calls["add_labels"] == 1
    async with store.engine.connect() as conn:
        modes = (
            (await conn.execute(select(agent_runs.c.mode).order_by(agent_runs.c.id)))
            .scalars()
            .all()
        )
    assert modes == ["fresh", "resume"]


async def test_execute__zombie_cannot_complete_or_act(store: Store, clock: FakeClock) -> None:
    """The first holder wakes after the takeover: its completion and effects are refused (G5)."""

    forge, agent = MemoryForge(), ScriptedAgent()
    core = make_core(store, clock, forge=forge, agent=agent)
    seeded = await seed_claimed(store, clock, owner="zombie")
    task, zombie, zombie_agent_run = seeded.task, seeded.run, seeded.agent_run_id
    assert zombie_agent_run is not None
    clock.advance(LEASE_S + 1)
    await core.router.route(event(Intent.START_PLAN, delivery="d-1"))  # the takeover completes it
    calls_after_takeover = sum(forge.calls.values())

    with pytest.raises(LeaseLost):
        await store.phases.finish(
            zombie.guard,
            zombie_agent_run,
            Recorded(PhaseStatus.COMPLETE, text="stale"),
            effects_lease_s=LEASE_S,
            now=clock(),
        )
    stale = Effect(f"{REPO}#7/plan/1/zombie-comment", EffectKind.COMMENT, REPO, 7, body="stale")
    with pytest.raises(LeaseLost):
        await core.ledger.perform(stale, Scope(task.id, "plan", 1, zombie.guard))
    with pytest.raises(LeaseLost):
        await store.phases.effects_finished(zombie.guard, clock())

    assert sum(forge.calls.values()) == calls_after_takeover
    final = await store.phases.get(task.id, Phase.PLAN)
    assert final is not None
    assert final.result_text != "stale"
    assert await count(store, effects) == 2  # the plan comment and label, not the zombie's


async def test_execute__crash_after_result_performs_only_outstanding_effects(
    store: Store, clock: FakeClock
) -> None:
    """Crash window: the result was recorded and the plan comment posted, then the worker died."""

    forge, agent = MemoryForge(), ScriptedAgent()
    core = make_core(store, clock, forge=forge, agent=agent)
    seeded = await seed_finished(store, clock, PhaseStatus.COMPLETE, owner="dead", text="the plan")
    task, held = seeded.task, seeded.run
    finished = await store.phases.get(task.id, Phase.PLAN)
    assert finished is not None

    async def no_pr(_: int) -> None:
        raise AssertionError

    ctx = HookContext(task, finished, core.ledger, Scope(task.id, "plan", 1, held.guard), no_pr)
    await ctx.comment("plan-comment", "## Implementation plan\n\nthe plan")  # then the crash
    clock.advance(LEASE_S + 1)

    await core.router.route(event(Intent.START_PLAN, delivery="d-1"))

    assert agent.calls == []
    assert forge.calls["create_comment"] == 1
    assert forge.calls["add_labels"] == 1
    assert forge.reads == 1  # permission only: a `done` effect needs no reconciliation
    final = await store.phases.get(task.id, Phase.PLAN)
    assert final is not None
    assert final.effects_done


async def test_ledger__dropped_response_is_adopted_with_one_list_call(
    store: Store, clock: FakeClock
) -> None:
    """GitHub applied the comment but the response was lost: find the marker, post nothing more."""
    forge, agent = MemoryForge(), ScriptedAgent()
    forge.inject("create_comment", "drop")
    core = make_core(store, clock, forge=forge, agent=agent)

    routed = await core.router.route(event(Intent.START_PLAN))

    assert routed.status is PhaseStatus.COMPLETE
    assert forge.calls["create_comment"] == 1
    assert forge.calls["list_comments"] == 1
    assert len(forge.comments[(REPO, 7)]) == 1
    task = await store.tasks.find(REPO, 7)
    assert task is not None
    rows = await store.effects.for_task(task.id)
    assert {r.status.value for r in rows} == {"done"}


async def test_ledger__crash_after_request_is_reconciled_on_retry(
    store: Store, clock: FakeClock
) -> None:
    """The worker died between GitHub applying the comment and recording `done`."""
    forge, agent = MemoryForge(), ScriptedAgent()
    core = make_core(store, clock, forge=forge, agent=agent)

    class Died(BaseException):
        pass

    real = forge.create_comment

    async def apply_then_die(repo: str, issue: int, body: str) -> int:
        await real(repo, issue, body)
        raise Died

    forge.create_comment = apply_then_die  # type: ignore[method-assign]
    with contextlib.suppress(Died):
        await core.router.route(event(Intent.START_PLAN, delivery="d-1"))
    forge.create_comment = real  # type: ignore[method-assign]
    clock.advance(31.0)

    await core.router.route(event(Intent.START_PLAN, delivery="d-1"))

    assert len(forge.comments[(REPO, 7)]) == 1
    assert forge.calls["list_comments"] == 1
    assert forge.calls["create_comment"] == 1
    assert len(agent.calls) == 1


async def test_execute__agent_errors_resume_then_fail_visibly(
    store: Store, clock: FakeClock
) -> None:
    """The agent keeps erroring: each retry resumes the same session; after the limit the
    phase is `failed` with a reason and one comment says so (G4: visibly failed)."""
    forge = MemoryForge()
    agent = ScriptedAgent(outcomes={Phase.PLAN: Outcome.ERROR})
    core = make_core(store, clock, forge=forge, agent=agent)

    routed = await core.router.route(event(Intent.START_PLAN))

    assert routed.status is PhaseStatus.FAILED
    assert [c.resume for c in agent.calls] == [False, True, True]
    assert len({c.session_id for c in agent.calls}) == 1
    comments = forge.comments[(REPO, 7)]
    assert len(comments) == 1
    assert "failed" in comments[0].body
    assert forge.labels[(REPO, 7)] == {"agent-blocked"}


async def test_execute__one_agent_error_is_resumed_to_completion(
    store: Store, clock: FakeClock
) -> None:
    forge, agent = MemoryForge(), ScriptedAgent()
    core = make_core(store, clock, forge=forge, agent=agent)

    routed = await core.router.route(event(Intent.START_PLAN, body="agent-test: error plan"))

    assert routed.status is PhaseStatus.COMPLETE
    assert [c.resume for c in agent.calls] == [False, True]
    assert len(forge.comments[(REPO, 7)]) == 1


async def test_trust__concurrent_misses_share_one_permission_lookup(
    store: Store, clock: FakeClock
) -> None:
    forge = MemoryForge()
    real = forge.permission

    async def slow_permission(repo: str, user: str) -> Permission:
        await asyncio.sleep(0.05)  # GitHub takes a while: the other events arrive meanwhile
        return await real(repo, user)

    forge.permission = slow_permission  # type: ignore[method-assign]
    core = make_core(store, clock, forge=forge)

    await asyncio.gather(
        *(core.router.route(event(Intent.START_PLAN, issue=n)) for n in range(1, 6))
    )

    assert forge.calls["permission"] == 1
