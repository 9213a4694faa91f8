"""The router's scenarios, each run against both GitHubs and both databases.

`world` (tests/core/conftest.py) is the recording twin `MemoryForge` or the real REST
adapter `GitHubForge` against the GitHub emulator over HTTP; `store` is SQLite or
PostgreSQL. What is asserted is what GitHub holds (comments with their bodies,
labels, pull requests) and what it was asked (`world.calls()`, per forge operation),
so one scenario checks the core's decisions and, on the emulator, that the adapter
carries them out over REST as GitHub would answer.

Scenarios that only make sense on one side are marked `EMULATOR_ONLY` and say why.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace

import pytest
from sqlalchemy import select

from agent_workflow.core.effects import Effect, EffectKind, EffectStatus, effect_key
from agent_workflow.core.errors import LeaseLost, UncertainOutcome
from agent_workflow.core.hooks import HookContext
from agent_workflow.core.ledger import UNCERTAIN_ROUNDS, Scope
from agent_workflow.core.model import LIFECYCLE, Intent, Phase, PhaseStatus
from agent_workflow.core.ports import AgentResult, Outcome
from agent_workflow.core.routed import Action
from agent_workflow.store import Store
from agent_workflow.store.schema import agent_runs, effects, tasks
from agent_workflow.testing.agent import ScriptedAgent
from tests.conftest import FakeClock
from tests.core.helpers import (
    LEASE_S,
    MARKERS,
    count_rows,
    make_core,
    seed_claimed,
    seed_finished,
)
from tests.core.worlds import FAULT_PATHS, Died, EmulatorWorld, World
from tests.support.events import BOT, REPO, UNTRUSTED, event

EMULATOR_ONLY = pytest.mark.parametrize("world", ["emulator"], indirect=True)

#: Everything one plan reaches GitHub with: the actor's permission, the comment, the label.
PLAN_CALLS = {"permission": 1, "create_comment": 1, "add_labels": 1}


def plan_marker(issue: int, attempt: int = 1) -> str:
    """The hidden marker the plan comment of `issue` must carry."""
    return MARKERS.marker(effect_key(REPO, issue, Phase.PLAN, attempt, "plan-comment"))


async def assert_one_plan_comment(world: World, issue: int) -> None:
    """GitHub holds exactly one comment on the issue: the bot's marked plan."""
    comments = await world.comments(issue)
    assert len(comments) == 1, comments
    assert comments[0].author == BOT
    assert comments[0].body.startswith("## Implementation plan")
    assert comments[0].body.rstrip().endswith(plan_marker(issue))


async def assert_effects_done(store: Store, issue: int) -> None:
    """Every effect of the issue's task is recorded `done`."""
    task = await store.tasks.find(REPO, issue)
    assert task is not None
    rows = await store.effects.for_task(task.id)
    assert rows
    assert {r.status for r in rows} == {EffectStatus.DONE}, rows


# -- routing -----------------------------------------------------------------------------


async def test_route__same_event_twice_runs_once(
    store: Store, clock: FakeClock, world: World
) -> None:
    agent = ScriptedAgent()
    core = make_core(store, clock, forge=world.forge, agent=agent)
    plan = event(Intent.START_PLAN, world.issue, delivery="d-1")

    first = await core.router.route(plan)
    second = await core.router.route(plan)

    assert first.status is PhaseStatus.COMPLETE
    assert second.status is PhaseStatus.COMPLETE
    assert await count_rows(store, tasks) == 1
    assert len(agent.calls) == 1
    assert len(agent.fresh_starts) == 1
    await assert_one_plan_comment(world, world.issue)
    assert await world.labels(world.issue) == {"agent-planned"}
    # The permission is cached and the second routing found everything `done`: not one
    # more call, and no reconciliation read (G6).
    assert await world.calls() == PLAN_CALLS


async def test_route__full_lifecycle_makes_only_mutations(
    store: Store, clock: FakeClock, world: World
) -> None:
    """Plan, approve, merge: every phase complete, and GitHub was asked only to change
    things (plus the actor's permission, once): no reconciliation reads (G6)."""
    issue = world.issue
    core = make_core(store, clock, forge=world.forge, agent=ScriptedAgent())

    await core.router.route(event(Intent.START_PLAN, issue))
    await core.router.route(event(Intent.APPROVE, issue))
    task = await store.tasks.find(REPO, issue)
    assert task is not None
    assert task.pr_number is not None
    await core.router.route(event(Intent.MERGED, issue, pr_number=task.pr_number, actor="bob"))

    phases = {r.phase: r.status for r in await store.phases.for_task(task.id)}
    assert phases == {p: PhaseStatus.COMPLETE for p in LIFECYCLE}
    assert await world.calls() == {
        "permission": 1,  # alice, cached afterwards; a merge needs no permission check
        "create_comment": 3,  # plan, PR link, lessons summary
        "add_labels": 3,
        "open_pull_request": 1,
    }
    comments = await world.comments(issue)
    assert [c.body.split("\n", 1)[0] for c in comments] == [
        "## Implementation plan",
        f"Opened pull request #{task.pr_number} for this issue.",
        "## What we learned",
    ]
    for c, name in zip(comments, ("plan-comment", "pr-comment", "summary-comment"), strict=True):
        assert c.author == BOT
        phase = {"plan-comment": "plan", "pr-comment": "deliver"}.get(name, "compound")
        assert c.body.rstrip().endswith(MARKERS.marker(effect_key(REPO, issue, phase, 1, name)))
    assert await world.labels(issue) == {"agent-planned", "agent-delivered", "agent-done"}
    [pull] = await world.pulls()
    assert (pull.number, pull.head) == (task.pr_number, f"agent/issue-{issue}")
    await assert_effects_done(store, issue)


async def test_route__approve_before_plan_is_a_noop_with_one_comment(
    store: Store, clock: FakeClock, world: World
) -> None:
    """`/approve` while another worker still plans: nothing starts, and the hint that
    approval must wait is posted once per plan attempt, however often it is repeated."""
    agent = ScriptedAgent(outcomes={Phase.PLAN: Outcome.ERROR})
    core = make_core(store, clock, forge=world.forge, agent=agent)
    seeded = await seed_claimed(store, clock, owner="other", start_agent=False, issue=world.issue)

    for _ in range(3):
        routed = await core.router.route(event(Intent.APPROVE, world.issue))
        assert routed.action is Action.NOOP

    assert await store.phases.get(seeded.task.id, Phase.DELIVER) is None
    assert agent.calls == []
    [hint] = await world.comments(world.issue)
    assert hint.body.startswith("The plan is not ready yet")
    assert await world.calls() == {"permission": 1, "create_comment": 1}


async def test_route__untrusted_actor_and_bots_start_nothing(
    store: Store, clock: FakeClock, world: World
) -> None:
    agent = ScriptedAgent()
    core = make_core(store, clock, forge=world.forge, agent=agent)

    untrusted = await core.router.route(event(Intent.START_PLAN, world.issue, actor=UNTRUSTED))
    bot = await core.router.route(event(Intent.START_PLAN, world.issue, actor="ci[bot]"))

    assert untrusted.action is Action.IGNORED
    assert bot.action is Action.IGNORED
    assert await count_rows(store, tasks) == 0
    assert agent.calls == []
    assert await world.comments(world.issue) == []
    assert await world.calls() == {"permission": 1}  # mallory's; a bot is never looked up


@pytest.mark.parametrize("merger", ["github-merge-queue[bot]", BOT])
async def test_route__merge_by_a_bot_of_our_pr_starts_compound(
    store: Store, clock: FakeClock, world: World, merger: str
) -> None:
    """A merge queue (or our own bot) merged the task's pull request: compound starts,
    while any other event of the same bot is still ignored."""
    issue = world.issue
    core = make_core(store, clock, forge=world.forge, agent=ScriptedAgent())
    await core.router.route(event(Intent.START_PLAN, issue))
    await core.router.route(event(Intent.APPROVE, issue))
    task = await store.tasks.find(REPO, issue)
    assert task is not None
    assert task.pr_number is not None

    other_pr = await core.router.route(
        replace(
            event(Intent.MERGED, issue, pr_number=task.pr_number + 1, actor=merger),
            actor_is_bot=True,
        )
    )
    retry = await core.router.route(
        replace(event(Intent.RETRY, issue, actor=merger), actor_is_bot=True)
    )
    merged = await core.router.route(
        replace(
            event(Intent.MERGED, issue, pr_number=task.pr_number, actor=merger), actor_is_bot=True
        )
    )

    assert other_pr.action is Action.NOOP
    assert retry.action is Action.IGNORED
    assert (merged.action, merged.phase, merged.status) == (
        Action.RAN,
        Phase.COMPOUND,
        PhaseStatus.COMPLETE,
    )
    assert (await world.calls())["permission"] == 1  # alice's; a merge is never looked up


async def test_route__merge_of_an_unknown_pr_number_starts_nothing(
    store: Store, clock: FakeClock, world: World
) -> None:
    """A merged event that names no pull request (or not the task's) never starts compound."""
    issue = world.issue
    agent = ScriptedAgent()
    core = make_core(store, clock, forge=world.forge, agent=agent)
    await core.router.route(event(Intent.START_PLAN, issue))
    await core.router.route(event(Intent.APPROVE, issue))

    routed = await core.router.route(event(Intent.MERGED, issue, pr_number=None))

    assert routed.action is Action.NOOP
    assert [c.phase for c in agent.calls] == [Phase.PLAN, Phase.DELIVER]


async def test_route__two_workers_race_on_the_same_delivery(
    store: Store, clock: FakeClock, world: World
) -> None:
    """Window: the same delivery reaches two workers at once (each with its own forge).

    The task insert and the phase claim decide: one agent run, one set of effects.
    """
    agent_a, agent_b = ScriptedAgent(duration_s=0.2), ScriptedAgent(duration_s=0.2)
    core_a = make_core(store, clock, forge=world.forge, agent=agent_a, owner="worker-a")
    core_b = make_core(
        store, clock, forge=await world.another_forge(), agent=agent_b, owner="worker-b"
    )
    plan = event(Intent.START_PLAN, world.issue, delivery="d-1")

    routed = await asyncio.gather(core_a.router.route(plan), core_b.router.route(plan))

    assert {r.status for r in routed} <= {PhaseStatus.COMPLETE, PhaseStatus.ACTIVE}
    assert len(agent_a.calls) + len(agent_b.calls) == 1
    assert await count_rows(store, tasks) == 1
    await assert_one_plan_comment(world, world.issue)
    calls = await world.calls()
    assert calls["permission"] <= 2  # each worker checks the actor once
    assert {**calls, "permission": 1} == PLAN_CALLS  # and nothing is read back


async def test_trust__concurrent_misses_share_one_permission_lookup(
    store: Store, clock: FakeClock, world: World
) -> None:
    """A burst of events by one actor while GitHub is slow to answer: one lookup."""
    issues = [world.issue, *[await world.new_issue() for _ in range(4)]]
    await world.slow_down("permission", 0.05)  # the other events arrive meanwhile
    core = make_core(store, clock, forge=world.forge)

    await asyncio.gather(*(core.router.route(event(Intent.START_PLAN, n)) for n in issues))

    assert await world.calls() == {"permission": 1, "create_comment": 5, "add_labels": 5}


# -- execution: leases, takeovers, fences ---------------------------------------------------


async def test_execute__reentered_under_live_lease_does_not_start_agent(
    store: Store, clock: FakeClock, world: World
) -> None:
    """Another worker holds the phase and is alive: a duplicate must leave it alone (G2)."""
    agent = ScriptedAgent()
    core = make_core(store, clock, forge=world.forge, agent=agent)
    await seed_claimed(store, clock, owner="worker-b", start_agent=False, issue=world.issue)

    routed = await core.router.route(event(Intent.START_PLAN, world.issue, delivery="d-1"))

    assert routed.status is PhaseStatus.ACTIVE
    assert agent.calls == []
    assert await world.comments(world.issue) == []
    assert await world.calls() == {"permission": 1}


async def test_execute__takeover_resumes_the_same_session_and_effects_happen_once(
    store: Store, clock: FakeClock, world: World
) -> None:
    """Window: the holder died after starting the agent; its lease expires, the next claim
    resumes the same session (fence + 1) and performs the effects once."""
    agent = ScriptedAgent()
    core = make_core(store, clock, forge=world.forge, agent=agent)
    seeded = await seed_claimed(store, clock, owner="worker-dead", issue=world.issue)
    task, dead = seeded.task, seeded.run

    # Under the dead holder's live lease a duplicate does nothing at all (G2).
    early = await core.router.route(event(Intent.START_PLAN, world.issue, delivery="d-1"))
    assert early.status is PhaseStatus.ACTIVE
    assert agent.calls == []
    assert await world.comments(world.issue) == []

    clock.advance(LEASE_S + 1)
    routed = await core.router.route(event(Intent.START_PLAN, world.issue, delivery="d-1"))

    assert routed.status is PhaseStatus.COMPLETE
    finished = await store.phases.get(task.id, Phase.PLAN)
    assert finished is not None
    assert finished.fence == dead.fence + 1
    assert [c.resume for c in agent.calls] == [True]
    assert agent.calls[0].session_id == finished.session_id
    assert agent.fresh_starts == []
    async with store.engine.connect() as conn:
        modes = (
            (await conn.execute(select(agent_runs.c.mode).order_by(agent_runs.c.id)))
            .scalars()
            .all()
        )
    assert modes == ["fresh", "resume"]
    await assert_one_plan_comment(world, world.issue)
    assert await world.labels(world.issue) == {"agent-planned"}
    assert await world.calls() == PLAN_CALLS


async def test_execute__zombie_cannot_complete_or_act(
    store: Store, clock: FakeClock, world: World
) -> None:
    """Window: the first holder wakes after the takeover; its completion and effects are
    refused (G5)."""
    core = make_core(store, clock, forge=world.forge, agent=ScriptedAgent())
    seeded = await seed_claimed(store, clock, owner="zombie", issue=world.issue)
    task, zombie, zombie_agent_run = seeded.task, seeded.run, seeded.agent_run_id
    assert zombie_agent_run is not None
    clock.advance(LEASE_S + 1)
    await core.router.route(event(Intent.START_PLAN, world.issue, delivery="d-1"))  # takeover
    after_takeover = await world.calls()

    with pytest.raises(LeaseLost):
        await store.phases.finish(
            zombie.guard,
            zombie_agent_run,
            PhaseStatus.COMPLETE,
            AgentResult(Outcome.SUCCESS, text="stale"),
            max_failures=3,
            effects_lease_s=LEASE_S,
            now=clock(),
        )
    stale = Effect(
        effect_key(REPO, world.issue, Phase.PLAN, 1, "zombie-comment"),
        EffectKind.COMMENT,
        REPO,
        world.issue,
        body="stale",
    )
    with pytest.raises(LeaseLost):
        await core.ledger.perform(stale, Scope(task.id, Phase.PLAN.value, 1, zombie.guard))
    with pytest.raises(LeaseLost):
        await store.phases.effects_finished(zombie.guard, clock())

    # Not one call reached GitHub on the zombie's behalf.
    assert await world.calls() == after_takeover
    assert after_takeover == PLAN_CALLS
    await assert_one_plan_comment(world, world.issue)
    final = await store.phases.get(task.id, Phase.PLAN)
    assert final is not None
    assert final.result_text != "stale"
    assert await count_rows(store, effects) == 2  # the plan comment and label only


async def test_execute__crash_after_result_performs_only_outstanding_effects(
    store: Store, clock: FakeClock, world: World
) -> None:
    """Crash window: the result was recorded and the plan comment posted, then the worker died."""
    agent = ScriptedAgent()
    core = make_core(store, clock, forge=world.forge, agent=agent)
    seeded = await seed_finished(
        store, clock, PhaseStatus.COMPLETE, owner="dead", text="the plan", issue=world.issue
    )
    task, held = seeded.task, seeded.run
    finished = await store.phases.get(task.id, Phase.PLAN)
    assert finished is not None

    async def no_pr(_: int) -> None:
        raise AssertionError

    ctx = HookContext(task, finished, core.ledger, Scope(task.id, "plan", 1, held.guard), no_pr)
    await ctx.perform(ctx.comment("plan-comment", "## Implementation plan\n\nthe plan"))  # crash
    clock.advance(LEASE_S + 1)

    await core.router.route(event(Intent.START_PLAN, world.issue, delivery="d-1"))

    assert agent.calls == []
    # The comment before the crash, the label after it; a `done` effect needs no
    # reconciliation, so the only read is the permission (G6).
    assert await world.calls() == PLAN_CALLS
    await assert_one_plan_comment(world, world.issue)
    assert await world.labels(world.issue) == {"agent-planned"}
    final = await store.phases.get(task.id, Phase.PLAN)
    assert final is not None
    assert final.effects_done


async def test_execute__agent_errors_resume_then_fail_visibly(
    store: Store, clock: FakeClock, world: World
) -> None:
    """The agent keeps erroring: each retry resumes the same session; after the limit the
    phase is `failed` with a reason and one comment says so (G4: visibly failed)."""
    agent = ScriptedAgent(outcomes={Phase.PLAN: Outcome.ERROR})
    core = make_core(store, clock, forge=world.forge, agent=agent)

    routed = await core.router.route(event(Intent.START_PLAN, world.issue))

    assert routed.status is PhaseStatus.FAILED
    assert [c.resume for c in agent.calls] == [False, True, True]
    assert len({c.session_id for c in agent.calls}) == 1
    [comment] = await world.comments(world.issue)
    assert "failed" in comment.body
    assert comment.author == BOT
    assert await world.labels(world.issue) == {"agent-blocked"}
    assert await world.calls() == PLAN_CALLS


async def test_execute__one_agent_error_is_resumed_to_completion(
    store: Store, clock: FakeClock, world: World
) -> None:
    agent = ScriptedAgent()
    core = make_core(store, clock, forge=world.forge, agent=agent)

    routed = await core.router.route(
        event(Intent.START_PLAN, world.issue, body="agent-test: error plan")
    )

    assert routed.status is PhaseStatus.COMPLETE
    assert [c.resume for c in agent.calls] == [False, True]
    await assert_one_plan_comment(world, world.issue)
    assert await world.calls() == PLAN_CALLS


# -- the ledger: uncertain outcomes ----------------------------------------------------------


async def test_ledger__response_lost_after_apply_is_adopted_with_one_list_call(
    store: Store, clock: FakeClock, world: World
) -> None:
    """Window: GitHub applied the comment and the response was lost (the connection died).

    The forge reports an uncertain outcome (never resends); the ledger lists the
    issue's comments once, finds its marker, adopts that comment and posts nothing more.
    """
    await world.drop_response("create_comment")
    core = make_core(store, clock, forge=world.forge, agent=ScriptedAgent())

    routed = await core.router.route(event(Intent.START_PLAN, world.issue))

    assert routed.status is PhaseStatus.COMPLETE
    await assert_one_plan_comment(world, world.issue)
    assert await world.faults_fired() == {"drop_response create_comment": 1}
    assert await world.calls() == {**PLAN_CALLS, "list_comments": 1}
    assert world.uncertain() == 1
    await assert_effects_done(store, world.issue)
    task = await store.tasks.find(REPO, world.issue)
    assert task is not None
    adopted = {r.key: r.external_id for r in await store.effects.for_task(task.id)}
    [comment] = await world.comments(world.issue)
    assert adopted[effect_key(REPO, world.issue, Phase.PLAN, 1, "plan-comment")] == str(comment.id)


async def test_ledger__crash_after_request_is_reconciled_on_retry(
    store: Store, clock: FakeClock, world: World
) -> None:
    """Window: the worker died between GitHub applying the comment and recording `done`."""
    agent = ScriptedAgent()
    core = make_core(store, clock, forge=world.forge, agent=agent)

    world.crash_after_apply("create_comment")
    with contextlib.suppress(Died):
        await core.router.route(event(Intent.START_PLAN, world.issue, delivery="d-1"))
    await assert_one_plan_comment(world, world.issue)  # applied, but not recorded `done`
    clock.advance(LEASE_S + 1)

    await core.router.route(event(Intent.START_PLAN, world.issue, delivery="d-1"))

    await assert_one_plan_comment(world, world.issue)
    assert await world.calls() == {**PLAN_CALLS, "list_comments": 1}
    assert len(agent.calls) == 1
    await assert_effects_done(store, world.issue)


async def test_ledger__502_before_apply_is_reconciled_then_posted_once(
    store: Store, clock: FakeClock, world: World
) -> None:
    """Window: GitHub answered 502 to the comment (here: without applying it).

    A 5xx on a POST is an uncertain outcome: the ledger reconciles first (one list
    call finds no marker) and only then posts again, so exactly one comment exists.
    """
    await world.fail_before_apply("create_comment")
    core = make_core(store, clock, forge=world.forge, agent=ScriptedAgent())

    routed = await core.router.route(event(Intent.START_PLAN, world.issue))

    assert routed.status is PhaseStatus.COMPLETE
    await assert_one_plan_comment(world, world.issue)
    assert await world.faults_fired() == {"fail_before_apply create_comment": 1}
    assert await world.calls() == {
        **PLAN_CALLS,
        "create_comment": 2,  # the 502, then the real one
        "list_comments": 1,  # reconciled before resending
    }
    assert world.uncertain() == 1
    await assert_effects_done(store, world.issue)


async def test_ledger__persistent_502_leaves_the_effect_for_the_next_attempt(
    store: Store, clock: FakeClock, world: World
) -> None:
    """Window: every comment answers 502 for a while (GitHub having a bad minute).

    The ledger gives up after its rounds and leaves the effect `started`; once the
    effects lease expires, the next attempt reconciles (no marker) and posts exactly once.
    """
    await world.fail_before_apply("create_comment", times=None)
    agent = ScriptedAgent()
    core = make_core(store, clock, forge=world.forge, agent=agent)

    with pytest.raises(UncertainOutcome):
        await core.router.route(event(Intent.START_PLAN, world.issue, delivery="d-1"))
    assert await world.comments(world.issue) == []
    assert await world.faults_fired() == {"fail_before_apply create_comment": UNCERTAIN_ROUNDS}
    assert await world.calls() == {
        "permission": 1,
        "create_comment": UNCERTAIN_ROUNDS,
        "list_comments": UNCERTAIN_ROUNDS - 1,  # before each resend
    }
    task = await store.tasks.find(REPO, world.issue)
    assert task is not None
    rows = {row.key.rsplit("/", 1)[1]: row.status for row in await store.effects.for_task(task.id)}
    # The hook began its effects together; none got further.
    assert rows == {"plan-comment": EffectStatus.STARTED, "planned-label": EffectStatus.STARTED}

    await world.clear_faults()
    await world.reset_calls()
    clock.advance(LEASE_S + 1)
    routed = await core.router.route(event(Intent.START_PLAN, world.issue, delivery="d-1"))

    assert routed.status is PhaseStatus.COMPLETE
    assert len(agent.calls) == 1  # the result was recorded: only the effects were redone
    await assert_one_plan_comment(world, world.issue)
    assert await world.calls() == {
        "list_comments": 1,  # the uncertain effect is reconciled first
        "create_comment": 1,
        "add_labels": 1,
    }
    await assert_effects_done(store, world.issue)


# -- delivery: exactly one pull request ------------------------------------------------------


async def test_deliver__existing_pull_request_is_adopted(
    store: Store, clock: FakeClock, world: World
) -> None:
    """Window: the PR for `agent/issue-N` already exists (an earlier attempt opened it).

    The task records that PR: still exactly one PR. (GitHub refuses the second
    `POST /pulls` with 422 "A pull request already exists"; the REST adapter then
    looks the PR up by head branch. The twin adopts it without a lookup.)
    """
    issue = world.issue
    core = make_core(store, clock, forge=world.forge, agent=ScriptedAgent())
    await core.router.route(event(Intent.START_PLAN, issue))
    existing = await world.open_pull(f"agent/issue-{issue}")
    await world.reset_calls()

    routed = await core.router.route(event(Intent.APPROVE, issue))

    assert routed.phase is Phase.DELIVER
    assert routed.status is PhaseStatus.COMPLETE
    assert [p.number for p in await world.pulls()] == [existing]
    task = await store.tasks.find(REPO, issue)
    assert task is not None
    assert task.pr_number == existing
    comments = await world.comments(issue)
    assert len(comments) == 2  # the plan, then the link to the adopted PR
    assert f"#{existing}" in comments[1].body
    expected = {"open_pull_request": 1, "create_comment": 1, "add_labels": 1}
    if isinstance(world, EmulatorWorld):
        expected["find_pull_request"] = 1  # the adapter's lookup after the 422
    assert await world.calls() == expected  # the refused POST is never retried
    await assert_effects_done(store, issue)


async def test_deliver__pull_request_response_lost_is_found_by_head(
    store: Store, clock: FakeClock, world: World
) -> None:
    """Window: GitHub opened the PR and the response to it was lost.

    Reconciliation looks the PR up by head branch (any state) and adopts it.
    """
    issue = world.issue
    core = make_core(store, clock, forge=world.forge, agent=ScriptedAgent())
    await core.router.route(event(Intent.START_PLAN, issue))
    await world.drop_response("open_pull_request")
    await world.reset_calls()

    routed = await core.router.route(event(Intent.APPROVE, issue))

    assert routed.status is PhaseStatus.COMPLETE
    [pull] = await world.pulls()
    assert pull.head == f"agent/issue-{issue}"
    task = await store.tasks.find(REPO, issue)
    assert task is not None
    assert task.pr_number == pull.number
    assert await world.faults_fired() == {"drop_response open_pull_request": 1}
    assert await world.calls() == {
        "open_pull_request": 1,
        "find_pull_request": 1,
        "create_comment": 1,
        "add_labels": 1,
    }
    await assert_effects_done(store, issue)


# -- the REST adapter only ---------------------------------------------------------------------


@EMULATOR_ONLY
async def test_ledger__secondary_rate_limit_is_waited_out(
    store: Store, clock: FakeClock, world: World
) -> None:
    """Window: GitHub refused the comment with a secondary rate limit (`retry-after: 1`).

    Emulator only: rate limits and `Retry-After` are HTTP, handled inside the adapter
    (the twin has no such answer). A rate-limited request was not applied, so the
    adapter waits and sends it again: no uncertainty, no reconciliation read, one comment.
    """
    assert isinstance(world, EmulatorWorld)
    method, path = FAULT_PATHS["create_comment"]
    await world.emu.admin.add_fault(method, path, "secondary_rate_limit", retry_after=1, status=403)
    core = make_core(store, clock, forge=world.forge, agent=ScriptedAgent())

    started = time.monotonic()
    routed = await core.router.route(event(Intent.START_PLAN, world.issue))
    elapsed = time.monotonic() - started

    assert routed.status is PhaseStatus.COMPLETE
    assert elapsed >= 0.9  # retry-after was honoured
    await assert_one_plan_comment(world, world.issue)
    assert await world.faults_fired() == {"secondary_rate_limit create_comment": 1}
    assert await world.calls() == {**PLAN_CALLS, "create_comment": 2}
    assert world.github.stats.rate_limit_waits == 1
    assert world.uncertain() == 0
    await assert_effects_done(store, world.issue)
