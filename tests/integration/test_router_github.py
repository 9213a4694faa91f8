"""The router's scenarios over real HTTP: `GitHubForge` against the GitHub emulator.

Same scenarios as `tests/core/test_router.py`, but every effect goes through the
REST adapter, so what is asserted is what GitHub would hold (the emulator's admin
state) and what it was asked (the emulator's per-endpoint counters).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from agent_workflow.agents.scripted import ScriptedAgent
from agent_workflow.core.effects import Effect, EffectKind, effect_key, marker
from agent_workflow.core.ledger import Scope
from agent_workflow.core.model import Intent, Phase, PhaseStatus
from agent_workflow.errors import LeaseLost, UncertainOutcome
from agent_workflow.forge.emulator import EmulatorServer
from agent_workflow.forge.github import GitHubForge
from agent_workflow.store import Store
from agent_workflow.store.effects import EffectStatus
from agent_workflow.store.phase_runs import RecordedResult as Recorded
from agent_workflow.store.schema import effects, tasks
from tests.conftest import FakeClock
from tests.integration.helpers import (
    BOT,
    COMMENTS_GET,
    COMMENTS_PATH,
    COMMENTS_POST,
    LABELS_POST,
    LEASE_S,
    PERMISSION_GET,
    PULLS_GET,
    PULLS_PATH,
    PULLS_POST,
    REPO,
    TRUSTED,
    count_rows,
    event,
    github_calls,
    github_forge,
    make_core,
    task_info,
)


@pytest.fixture
async def issue(emu: EmulatorServer) -> int:
    """An issue opened by the trusted user; counters start from zero after it."""
    number = await emu.admin.create_issue(REPO, "Add widgets", author=TRUSTED)
    await emu.admin.reset_counters()
    return number


def plan_marker(issue: int, attempt: int = 1) -> str:
    """The hidden marker the plan comment of `issue` must carry."""
    return marker(effect_key(REPO, issue, Phase.PLAN, attempt, "plan-comment"))


async def assert_one_plan_comment(emu: EmulatorServer, issue: int) -> None:
    """GitHub holds exactly one comment on the issue: the bot's marked plan."""
    comments = await emu.admin.comments(REPO, issue)
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


async def test_route__same_event_twice_runs_once(
    store: Store, clock: FakeClock, emu: EmulatorServer, forge: GitHubForge, issue: int
) -> None:
    agent = ScriptedAgent()
    core = make_core(store, clock, forge, agent)
    plan = event(Intent.START_PLAN, issue, delivery="d-1")

    first = await core.router.route(plan)
    second = await core.router.route(plan)

    assert first.status is PhaseStatus.COMPLETE
    assert second.status is PhaseStatus.COMPLETE
    assert await count_rows(store, tasks) == 1
    assert len(agent.calls) == 1
    assert len(agent.fresh_starts) == 1
    await assert_one_plan_comment(emu, issue)
    assert await emu.admin.labels(REPO, issue) == ["agent-planned"]
    # The second routing found everything `done`: not one more GitHub call.
    assert github_calls(await emu.admin.counters()) == {
        PERMISSION_GET: 1,
        COMMENTS_POST: 1,
        LABELS_POST: 1,
    }


async def test_ledger__response_lost_after_apply_is_adopted(
    store: Store, clock: FakeClock, emu: EmulatorServer, forge: GitHubForge, issue: int
) -> None:
    """Window: GitHub applied `POST .../comments` and the connection died before the answer.

    The adapter reports an uncertain outcome (never resends); the ledger lists the
    issue's comments once, finds its marker, adopts that comment and posts nothing more.
    """
    await emu.admin.add_fault("POST", COMMENTS_PATH, "drop_after_apply")
    core = make_core(store, clock, forge, ScriptedAgent())

    routed = await core.router.route(event(Intent.START_PLAN, issue))

    assert routed.status is PhaseStatus.COMPLETE
    await assert_one_plan_comment(emu, issue)
    counters = await emu.admin.counters()
    assert counters.faults == {f"drop_after_apply {COMMENTS_POST}": 1}
    assert counters.requests.get(COMMENTS_POST, 0) == 1
    assert counters.requests.get(COMMENTS_GET, 0) == 1
    assert forge.stats.uncertain == 1
    await assert_effects_done(store, issue)
    task = await store.tasks.find(REPO, issue)
    assert task is not None
    adopted = {r.key: r.external_id for r in await store.effects.for_task(task.id)}
    [comment] = await emu.admin.comments(REPO, issue)
    key = effect_key(REPO, issue, Phase.PLAN, 1, "plan-comment")
    assert adopted[key] == str(comment.id)


async def test_ledger__502_before_apply_is_reconciled_then_posted_once(
    store: Store, clock: FakeClock, emu: EmulatorServer, forge: GitHubForge, issue: int
) -> None:
    """Window: GitHub answered 502 to `POST .../comments` (here: without applying it).

    A 5xx on a POST is an uncertain outcome: the ledger reconciles first (one list
    call finds no marker) and only then posts again, so exactly one comment exists.
    """
    await emu.admin.add_fault("POST", COMMENTS_PATH, "error_502_before_apply")
    core = make_core(store, clock, forge, ScriptedAgent())

    routed = await core.router.route(event(Intent.START_PLAN, issue))

    assert routed.status is PhaseStatus.COMPLETE
    await assert_one_plan_comment(emu, issue)
    counters = await emu.admin.counters()
    assert counters.faults == {f"error_502_before_apply {COMMENTS_POST}": 1}
    assert counters.requests.get(COMMENTS_POST, 0) == 2  # the 502, then the real one
    assert counters.requests.get(COMMENTS_GET, 0) == 1  # reconciled before resending
    assert forge.stats.uncertain == 1
    await assert_effects_done(store, issue)


async def test_ledger__secondary_rate_limit_is_waited_out(
    store: Store, clock: FakeClock, emu: EmulatorServer, forge: GitHubForge, issue: int
) -> None:
    """Window: GitHub refused `POST .../comments` with a secondary rate limit (retry-after 1).

    A rate-limited request was not applied, so the adapter waits and sends it again:
    no uncertainty, no reconciliation read, one comment.
    """
    await emu.admin.add_fault(
        "POST", COMMENTS_PATH, "secondary_rate_limit", retry_after=1, status=403
    )
    core = make_core(store, clock, forge, ScriptedAgent())

    started = time.monotonic()
    routed = await core.router.route(event(Intent.START_PLAN, issue))
    elapsed = time.monotonic() - started

    assert routed.status is PhaseStatus.COMPLETE
    assert elapsed >= 0.9  # retry-after was honoured
    await assert_one_plan_comment(emu, issue)
    counters = await emu.admin.counters()
    assert counters.faults == {f"secondary_rate_limit {COMMENTS_POST}": 1}
    assert counters.requests.get(COMMENTS_POST, 0) == 2
    assert counters.requests.get(COMMENTS_GET, 0) == 0
    assert forge.stats.rate_limit_waits == 1
    assert forge.stats.uncertain == 0
    await assert_effects_done(store, issue)


async def test_deliver__existing_pull_request_is_adopted(
    store: Store, clock: FakeClock, emu: EmulatorServer, forge: GitHubForge, issue: int
) -> None:
    """Window: the PR for `agent/issue-N` already exists (an earlier attempt opened it).

    `POST /pulls` answers 422 "A pull request already exists"; the adapter looks the PR
    up by head branch and the task records that PR: still exactly one PR.
    """
    core = make_core(store, clock, forge, ScriptedAgent())
    await core.router.route(event(Intent.START_PLAN, issue))
    existing = await emu.admin.open_pull(
        REPO, head=f"agent/issue-{issue}", title="Earlier attempt", user=BOT
    )
    await emu.admin.reset_counters()

    routed = await core.router.route(event(Intent.APPROVE, issue))

    assert routed.phase is Phase.DELIVER
    assert routed.status is PhaseStatus.COMPLETE
    pulls = await emu.admin.pulls(REPO)
    assert [p.number for p in pulls] == [existing.id]
    task = await store.tasks.find(REPO, issue)
    assert task is not None
    assert task.pr_number == existing.id
    comments = await emu.admin.comments(REPO, issue)
    assert len(comments) == 2  # the plan, then the link to the adopted PR
    assert f"#{existing.id}" in comments[1].body
    calls = github_calls(await emu.admin.counters())
    assert calls[PULLS_POST] == 1  # refused with 422, never retried
    assert calls[PULLS_GET] == 1  # the lookup by head branch
    await assert_effects_done(store, issue)


async def test_deliver__pull_request_response_lost_is_found_by_head(
    store: Store, clock: FakeClock, emu: EmulatorServer, forge: GitHubForge, issue: int
) -> None:
    """Window: GitHub opened the PR and the response to `POST /pulls` was lost.

    Reconciliation looks the PR up by head branch (state=all) and adopts it.
    """
    core = make_core(store, clock, forge, ScriptedAgent())
    await core.router.route(event(Intent.START_PLAN, issue))
    await emu.admin.add_fault("POST", PULLS_PATH, "drop_after_apply")
    await emu.admin.reset_counters()

    routed = await core.router.route(event(Intent.APPROVE, issue))

    assert routed.status is PhaseStatus.COMPLETE
    pulls = await emu.admin.pulls(REPO)
    assert len(pulls) == 1
    assert pulls[0].pull is not None
    assert pulls[0].pull.head == f"agent/issue-{issue}"
    task = await store.tasks.find(REPO, issue)
    assert task is not None
    assert task.pr_number == pulls[0].number
    calls = github_calls(await emu.admin.counters())
    assert calls[PULLS_POST] == 1
    assert calls[PULLS_GET] == 1
    await assert_effects_done(store, issue)


async def test_execute__takeover_resumes_and_effects_happen_once(
    store: Store, clock: FakeClock, emu: EmulatorServer, forge: GitHubForge, issue: int
) -> None:
    """Window: the holder died after starting the agent; its lease expires, the next claim resumes."""
    agent = ScriptedAgent()
    core = make_core(store, clock, forge, agent)
    task = await store.tasks.ensure(task_info(issue), clock())
    run = await store.phases.ensure(task.id, Phase.PLAN, "d-1", clock())
    dead = await store.phases.claim(run.id, "worker-dead", LEASE_S, clock())
    assert dead is not None
    await store.phases.start_agent(
        dead.guard, session_id="s", mode="fresh", owner="worker-dead", now=clock()
    )

    # Under the dead holder's live lease a duplicate does nothing at all (G2).
    early = await core.router.route(event(Intent.START_PLAN, issue, delivery="d-1"))
    assert early.status is PhaseStatus.ACTIVE
    assert agent.calls == []
    assert await emu.admin.comments(REPO, issue) == []

    clock.advance(LEASE_S + 1)
    routed = await core.router.route(event(Intent.START_PLAN, issue, delivery="d-1"))

    assert routed.status is PhaseStatus.COMPLETE
    finished = await store.phases.get(task.id, Phase.PLAN)
    assert finished is not None
    assert finished.fence == dead.fence + 1
    assert [c.resume for c in agent.calls] == [True]
    assert agent.fresh_starts == []
    await assert_one_plan_comment(emu, issue)
    assert await emu.admin.labels(REPO, issue) == ["agent-planned"]
    assert github_calls(await emu.admin.counters()) == {
        PERMISSION_GET: 1,
        COMMENTS_POST: 1,
        LABELS_POST: 1,
    }


async def test_execute__zombie_cannot_complete_or_act(
    store: Store, clock: FakeClock, emu: EmulatorServer, forge: GitHubForge, issue: int
) -> None:
    """Window: the first holder wakes after the takeover; its completion and effects are refused (G5)."""
    core = make_core(store, clock, forge, ScriptedAgent())
    task = await store.tasks.ensure(task_info(issue), clock())
    run = await store.phases.ensure(task.id, Phase.PLAN, "d-1", clock())
    zombie = await store.phases.claim(run.id, "zombie", LEASE_S, clock())
    assert zombie is not None
    zombie_agent_run = await store.phases.start_agent(
        zombie.guard, session_id="s", mode="fresh", owner="zombie", now=clock()
    )
    clock.advance(LEASE_S + 1)
    await core.router.route(event(Intent.START_PLAN, issue, delivery="d-1"))  # the takeover
    after_takeover = github_calls(await emu.admin.counters())

    with pytest.raises(LeaseLost):
        await store.phases.finish(
            zombie.guard,
            zombie_agent_run,
            Recorded(PhaseStatus.COMPLETE, text="stale"),
            effects_lease_s=LEASE_S,
            now=clock(),
        )
    stale = Effect(
        effect_key(REPO, issue, Phase.PLAN, 1, "zombie-comment"),
        EffectKind.COMMENT,
        REPO,
        issue,
        body="stale",
    )
    with pytest.raises(LeaseLost):
        await core.ledger.perform(stale, Scope(task.id, Phase.PLAN.value, 1, zombie.guard))
    with pytest.raises(LeaseLost):
        await store.phases.effects_finished(zombie.guard, clock())

    # Not one request reached GitHub on the zombie's behalf.
    assert github_calls(await emu.admin.counters()) == after_takeover
    assert after_takeover == {PERMISSION_GET: 1, COMMENTS_POST: 1, LABELS_POST: 1}
    await assert_one_plan_comment(emu, issue)
    final = await store.phases.get(task.id, Phase.PLAN)
    assert final is not None
    assert final.result_text != "stale"
    assert await count_rows(store, effects) == 2  # the plan comment and label only


async def test_ledger__persistent_502_leaves_the_effect_for_the_next_attempt(
    store: Store, clock: FakeClock, emu: EmulatorServer, forge: GitHubForge, issue: int
) -> None:
    """Window: every `POST .../comments` answers 502 for a while (GitHub having a bad minute).

    The ledger gives up after its rounds and leaves the effect `started`; once the
    effects lease expires, the next attempt reconciles (no marker) and posts exactly once.
    """
    await emu.admin.add_fault("POST", COMMENTS_PATH, "error_502_before_apply", times=None)
    agent = ScriptedAgent()
    core = make_core(store, clock, forge, agent)

    with pytest.raises(UncertainOutcome):
        await core.router.route(event(Intent.START_PLAN, issue, delivery="d-1"))
    assert await emu.admin.comments(REPO, issue) == []
    task = await store.tasks.find(REPO, issue)
    assert task is not None
    [row] = await store.effects.for_task(task.id)
    assert row.status is EffectStatus.STARTED

    await emu.admin.clear_faults()
    await emu.admin.reset_counters()
    clock.advance(LEASE_S + 1)
    routed = await core.router.route(event(Intent.START_PLAN, issue, delivery="d-1"))

    assert routed.status is PhaseStatus.COMPLETE
    assert len(agent.calls) == 1  # the result was recorded: only the effects were redone
    await assert_one_plan_comment(emu, issue)
    assert github_calls(await emu.admin.counters()) == {
        COMMENTS_GET: 1,  # the uncertain effect is reconciled first
        COMMENTS_POST: 1,
        LABELS_POST: 1,
    }
    await assert_effects_done(store, issue)


async def test_route__two_workers_race_on_the_same_delivery(
    store: Store, clock: FakeClock, emu: EmulatorServer, issue: int
) -> None:
    """Window: the same delivery reaches two workers at once (each with its own adapter).

    The task insert and the phase claim decide: one agent run, one set of effects.
    """
    async with github_forge(emu) as forge_a, github_forge(emu) as forge_b:
        agent_a, agent_b = ScriptedAgent(duration_s=0.2), ScriptedAgent(duration_s=0.2)
        core_a = make_core(store, clock, forge_a, agent_a, owner="worker-a")
        core_b = make_core(store, clock, forge_b, agent_b, owner="worker-b")
        plan = event(Intent.START_PLAN, issue, delivery="d-1")

        routed = await asyncio.gather(core_a.router.route(plan), core_b.router.route(plan))

    assert {r.status for r in routed} <= {PhaseStatus.COMPLETE, PhaseStatus.ACTIVE}
    assert len(agent_a.calls) + len(agent_b.calls) == 1
    assert await count_rows(store, tasks) == 1
    await assert_one_plan_comment(emu, issue)
    calls = github_calls(await emu.admin.counters())
    assert calls[COMMENTS_POST] == 1
    assert calls[LABELS_POST] == 1
    assert calls[PERMISSION_GET] <= 2  # each worker checks the actor once
    assert COMMENTS_GET not in calls
