"""The whole product over real HTTP: emulator webhooks → `aw serve` (embedded) → REST effects.

`agent_workflow.service.serve.serve` runs in this event loop with AW settings from
`load_settings`: the real ingress app (signature check, inbox), the embedded queue,
the job handler, the router and the sweeper. The emulator sends signed webhooks to
it as users act (admin API), and the REST adapter performs the effects against it.
Only the agent is scripted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agent_workflow.core.effects import MARKER_PREFIX
from agent_workflow.core.model import LIFECYCLE, Phase, PhaseStatus
from agent_workflow.store import Store
from agent_workflow.store.schema import deliveries, effects, phase_runs, tasks
from agent_workflow.testing.agent import ScriptedAgent
from github_emulator import DeliveryInfo, EmulatorServer
from tests.core.helpers import count_rows
from tests.integration.helpers import (
    COMMENTS_POST,
    CONTENTS_GET,
    LABEL_DELETE,
    LABELS_POST,
    PERMISSION_GET,
    PULLS_POST,
    abandon_a_plan,
    eventually,
    github_calls,
)
from tests.integration.system import System, running_system
from tests.support.events import BOT, REPO, TRUSTED, UNTRUSTED

#: Every request the happy path may make: the mutations, the actor's permission, and the
#: repository's configuration (one read, then conditional ones answered 304).
HAPPY_PATH_ENDPOINTS = {COMMENTS_POST, LABELS_POST, PULLS_POST, PERMISSION_GET, CONTENTS_GET}


@pytest.fixture
async def system(store: Store, db_url: str) -> AsyncIterator[System]:
    """The served system with production settings (only the agent is scripted)."""
    async with running_system(store, db_url) as running:
        yield running


def answered(deliveries: list[DeliveryInfo]) -> set[int | None]:
    """The status codes the ingress answered the emulator with."""
    return {d.status_code for d in deliveries}


async def test_full_lifecycle__only_mutations_reach_github(system: System) -> None:
    emu, store = system.emu, system.store
    issue = await emu.admin.create_issue(REPO, "Add widgets", body="Please.", author=TRUSTED)
    await emu.admin.reset_counters()

    # plan: a trusted user labels the issue `agent`.
    acted = await emu.admin.add_label(REPO, issue, "agent", user=TRUSTED)
    assert answered(acted.deliveries) == {202}
    await system.phase_settled(issue, Phase.PLAN)
    [plan] = await system.bot_comments(issue)
    assert plan.startswith("## Implementation plan")

    # deliver: `/approve` opens the PR and links it.
    acted = await emu.admin.comment(REPO, issue, "/approve", user=TRUSTED)
    assert answered(acted.deliveries) == {202}
    await system.phase_settled(issue, Phase.DELIVER)
    task = await store.tasks.find(REPO, issue)
    assert task is not None
    assert task.pr_number is not None
    [pull] = await emu.admin.pulls(REPO)
    assert pull.number == task.pr_number
    assert pull.pull is not None
    assert pull.pull.head == f"agent/issue-{issue}"
    assert pull.author == BOT
    assert f"Closes #{issue}" in pull.body

    # compound: merging the PR brings the summary.
    acted = await emu.admin.merge_pull(REPO, task.pr_number, user=TRUSTED)
    assert 202 in answered(acted.deliveries)  # pull_request.closed; issues.closed is ignored
    await system.phase_settled(issue, Phase.COMPOUND)

    runs = await store.phases.for_task(task.id)
    assert {r.phase: r.status for r in runs} == {p: PhaseStatus.COMPLETE for p in LIFECYCLE}
    assert [(c.phase, c.resume) for c in system.agent.calls] == [
        (Phase.PLAN, False),
        (Phase.DELIVER, False),
        (Phase.COMPOUND, False),
    ]
    comments = await system.bot_comments(issue)
    assert len(comments) == 3  # plan, PR link, lessons summary
    assert comments[0] == plan
    assert f"#{task.pr_number}" in comments[1]
    assert comments[2].startswith("## What we learned")
    assert all(MARKER_PREFIX in body for body in comments)
    assert sorted(await emu.admin.labels(REPO, issue)) == [
        "agent",
        "agent-delivered",
        "agent-done",
        "agent-planned",
    ]
    assert len(await emu.admin.pulls(REPO)) == 1
    assert await count_rows(store, tasks) == 1

    calls = github_calls(await emu.admin.counters())
    print(f"\nGitHub REST calls for one full lifecycle (plan, deliver, compound): {calls}")
    assert set(calls) <= HAPPY_PATH_ENDPOINTS, calls  # no list-comments, no list-pulls
    assert calls.get(PERMISSION_GET, 0) <= 1  # one actor on one repository, then cached
    assert calls == {
        PERMISSION_GET: 1,
        CONTENTS_GET: 1,  # the repository's configuration, absent: remembered
        COMMENTS_POST: 3,
        LABELS_POST: 3,
        PULLS_POST: 1,
    }
    assert system.forge.stats.uncertain == 0
    assert system.forge.stats.retries == 0

    # Every webhook the bot's own effects caused was answered and started nothing.
    bot_caused = [
        d
        for d in await emu.admin.deliveries()
        if d.payload is not None and d.payload["sender"]["login"] == BOT
    ]
    assert {(d.event, d.action) for d in bot_caused} >= {
        ("issue_comment", "created"),
        ("issues", "labeled"),
        ("pull_request", "opened"),
    }
    assert answered(bot_caused) == {200}


async def test_untrusted_actor__label_and_approve_start_nothing(system: System) -> None:
    emu, store = system.emu, system.store
    issue = await emu.admin.create_issue(REPO, "Add widgets", author=UNTRUSTED)

    await emu.admin.add_label(REPO, issue, "agent", user=UNTRUSTED)
    await emu.admin.comment(REPO, issue, "/agent plan", user=UNTRUSTED)
    await emu.admin.comment(REPO, issue, "/approve", user=UNTRUSTED)
    await system.settled()

    assert await count_rows(store, tasks) == 0
    assert await count_rows(store, phase_runs) == 0
    assert await count_rows(store, deliveries) == 3  # accepted and routed, then ignored
    assert system.agent.calls == []
    assert await system.bot_comments(issue) == []
    calls = github_calls(await emu.admin.counters())
    # The trust check, cached for the later events; the repository's settings (its own
    # triggers decide a label or command; absent: remembered).
    assert calls == {PERMISSION_GET: 1, CONTENTS_GET: 1}

    # Once a trusted user's plan is posted, the untrusted `/approve` still delivers nothing.
    trusted_issue = await emu.admin.create_issue(REPO, "Fix gadgets", author=TRUSTED)
    await emu.admin.add_label(REPO, trusted_issue, "agent", user=TRUSTED)
    await system.phase_settled(trusted_issue, Phase.PLAN)
    await emu.admin.comment(REPO, trusted_issue, "/approve", user=UNTRUSTED)
    await emu.admin.add_label(REPO, trusted_issue, "agent-approved", user=UNTRUSTED)
    await system.settled()

    task = await store.tasks.find(REPO, trusted_issue)
    assert task is not None
    assert await store.phases.get(task.id, Phase.DELIVER) is None
    assert [c.phase for c in system.agent.calls] == [Phase.PLAN]
    assert len(await system.bot_comments(trusted_issue)) == 1
    assert await emu.admin.pulls(REPO) == []


async def test_bot_events__own_comments_and_labels_start_nothing(system: System) -> None:
    """The bot's own actions come back as webhooks; even when they read as commands, they are ignored."""
    emu, store = system.emu, system.store
    issue = await emu.admin.create_issue(REPO, "Add widgets", author=TRUSTED)
    await emu.admin.add_label(REPO, issue, "agent", user=TRUSTED)
    await system.phase_settled(issue, Phase.PLAN)
    effects_before = await count_rows(store, effects)
    await emu.admin.reset_counters()

    # The bot (our own token's login, a `[bot]` account) "says" commands and adds trigger labels.
    fresh = await emu.admin.create_issue(REPO, "Bot-opened", author=BOT)
    for number in (issue, fresh):
        acted = await emu.admin.comment(REPO, number, "/approve", user=BOT)
        assert answered(acted.deliveries) == {202}  # stored: the router must ignore it
        await emu.admin.comment(REPO, number, "/agent plan", user=BOT)
        await emu.admin.add_label(REPO, number, "agent-approved", user=BOT)
    await emu.admin.add_label(REPO, fresh, "agent", user=BOT)
    await system.settled()

    assert await store.tasks.find(REPO, fresh) is None
    task = await store.tasks.find(REPO, issue)
    assert task is not None
    assert await store.phases.get(task.id, Phase.DELIVER) is None
    assert [c.phase for c in system.agent.calls] == [Phase.PLAN]
    assert await count_rows(store, effects) == effects_before
    assert await emu.admin.pulls(REPO) == []
    # Only the comments the bot was made to write: the single plan comment is still alone.
    plans = [b for b in await system.bot_comments(issue) if b.startswith("## Implementation")]
    assert len(plans) == 1
    assert github_calls(await emu.admin.counters()) == {}  # not even a permission check


async def test_redeliveries_and_an_eager_sweeper__still_exactly_once(
    store: Store, db_url: str
) -> None:
    """Windows: a delivery arriving again (twice at once) while its phase runs, and the
    sweeper re-dispatching pending phases and unrouted deliveries as soon as it sees them.

    Every duplicate is absorbed by the inbox, the queue's job ids and the phase claim:
    the lifecycle costs exactly what the plain one does.
    """
    agent = ScriptedAgent(duration_s=0.3)  # long enough for duplicates to arrive mid-phase
    async with running_system(
        store, db_url, agent=agent, sweep_interval_s=0.02, sweep_grace_s=0.0
    ) as system:
        emu = system.emu
        issue = await emu.admin.create_issue(REPO, "Add widgets", author=TRUSTED)
        await emu.admin.reset_counters()

        label = await emu.admin.add_label(REPO, issue, "agent", user=TRUSTED)
        copies = await emu.admin.redeliver(label.deliveries[0].id, concurrent=2)
        assert answered(copies) == {200}  # duplicates: acknowledged, not stored again
        await system.phase_settled(issue, Phase.PLAN)

        approve = await emu.admin.comment(REPO, issue, "/approve", user=TRUSTED)
        await emu.admin.redeliver(approve.deliveries[0].id, concurrent=2)
        await system.phase_settled(issue, Phase.DELIVER)
        task = await store.tasks.find(REPO, issue)
        assert task is not None
        assert task.pr_number is not None

        merged = await emu.admin.merge_pull(REPO, task.pr_number, user=TRUSTED)
        closed = [d for d in merged.deliveries if d.event == "pull_request"]
        await emu.admin.redeliver(closed[0].id, concurrent=2)
        await system.phase_settled(issue, Phase.COMPOUND)

        assert [(c.phase, c.resume) for c in agent.calls] == [
            (Phase.PLAN, False),
            (Phase.DELIVER, False),
            (Phase.COMPOUND, False),
        ]
        assert len(await system.bot_comments(issue)) == 3
        assert len(await emu.admin.pulls(REPO)) == 1
        assert github_calls(await emu.admin.counters()) == {
            PERMISSION_GET: 1,
            CONTENTS_GET: 1,  # the repository's configuration, absent: remembered
            COMMENTS_POST: 3,
            LABELS_POST: 3,
            PULLS_POST: 1,
        }


async def test_approve_during_plan__one_helpful_comment_then_approve_works(
    store: Store, db_url: str
) -> None:
    """`/approve` while the plan still runs starts nothing and says so at most once."""
    agent = ScriptedAgent(duration_s=1.0)  # the window in which `/approve` is too early
    async with running_system(store, db_url, agent=agent) as system:
        emu = system.emu
        issue = await emu.admin.create_issue(REPO, "Add widgets", author=TRUSTED)
        await emu.admin.add_label(REPO, issue, "agent", user=TRUSTED)

        async def plan_running() -> bool:
            return bool(agent.calls)

        await eventually(plan_running, what="the plan's agent to start")
        await emu.admin.comment(REPO, issue, "/approve", user=TRUSTED)
        await emu.admin.comment(REPO, issue, "/approve", user=TRUSTED)
        await system.phase_settled(issue, Phase.PLAN)

        task = await store.tasks.find(REPO, issue)
        assert task is not None
        assert await store.phases.get(task.id, Phase.DELIVER) is None
        comments = await system.bot_comments(issue)
        assert len(comments) == 2, comments
        assert sum("plan is not ready yet" in body for body in comments) == 1
        assert sum(body.startswith("## Implementation plan") for body in comments) == 1

        await emu.admin.comment(REPO, issue, "/approve", user=TRUSTED)
        await system.phase_settled(issue, Phase.DELIVER)
        assert len(await emu.admin.pulls(REPO)) == 1
        assert [c.phase for c in agent.calls] == [Phase.PLAN, Phase.DELIVER]


async def test_blocked_plan__retry_posts_plan_and_clears_the_label(system: System) -> None:
    emu, store = system.emu, system.store
    issue = await emu.admin.create_issue(
        REPO, "Add widgets", body="agent-test: block plan", author=TRUSTED
    )
    await emu.admin.reset_counters()

    await emu.admin.add_label(REPO, issue, "agent", user=TRUSTED)
    await system.phase_settled(issue, Phase.PLAN)
    [blocked] = await system.bot_comments(issue)
    assert blocked.startswith("**agent-blocked**")
    assert "agent-blocked" in await emu.admin.labels(REPO, issue)

    await emu.admin.comment(REPO, issue, "/retry", user=TRUSTED)

    async def second_attempt_done() -> bool:
        task = await store.tasks.find(REPO, issue)
        run = None if task is None else await store.phases.get(task.id, Phase.PLAN)
        return run is not None and run.attempt == 2 and run.effects_done

    await eventually(second_attempt_done, what="the plan's second attempt")
    await system.settled()

    run_attempts = [(c.phase, c.attempt, c.resume) for c in system.agent.calls]
    assert run_attempts == [(Phase.PLAN, 1, False), (Phase.PLAN, 2, False)]
    comments = await system.bot_comments(issue)
    assert len(comments) == 2
    assert comments[1].startswith("## Implementation plan")
    assert sorted(await emu.admin.labels(REPO, issue)) == ["agent", "agent-planned"]
    assert github_calls(await emu.admin.counters()) == {
        PERMISSION_GET: 1,
        CONTENTS_GET: 1,  # the repository's configuration, absent: remembered
        COMMENTS_POST: 2,  # blocked, then the plan
        LABELS_POST: 2,  # agent-blocked, then agent-planned
        LABEL_DELETE: 1,  # agent-blocked taken off after the retry succeeded
    }


async def test_restart__recovers_the_phase_a_dead_worker_left(store: Store, db_url: str) -> None:
    """Window: a worker claimed the plan, started the agent and died; then `aw serve` starts.

    Start-up recovery finds the expired lease and resumes the same agent session (G2, G4):
    one resumed run, one plan comment, and still no reconciliation reads.
    """
    issue_number = 0

    async def dead_worker(emu: EmulatorServer) -> None:
        nonlocal issue_number
        issue_number = await abandon_a_plan(store, emu)
        await emu.admin.reset_counters()

    async with running_system(store, db_url, before_start=dead_worker) as system:
        await system.phase_settled(issue_number, Phase.PLAN)

        assert [(c.phase, c.resume) for c in system.agent.calls] == [(Phase.PLAN, True)]
        assert system.agent.fresh_starts == []
        [plan] = await system.bot_comments(issue_number)
        assert plan.startswith("## Implementation plan")
        assert github_calls(await system.emu.admin.counters()) == {
            CONTENTS_GET: 1,  # the new process reads the repository's configuration once
            COMMENTS_POST: 1,
            LABELS_POST: 1,
        }
