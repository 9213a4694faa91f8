"""Rounds after the pull request (issue 11): review rounds and CI repair rounds, each
exactly once per trigger, bounded, under the same ledger as the phases.

Every scenario runs four ways: the memory twin and the GitHub emulator, on SQLite and
PostgreSQL (`world` x `store`).
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from agent_workflow.core.errors import PhaseBusy
from agent_workflow.core.hooks import LABEL_BLOCKED
from agent_workflow.core.model import Intent, Phase, PhaseStatus, RoundTrigger, Task
from agent_workflow.core.ports import AgentRequest, AgentResult, CheckRun
from agent_workflow.core.rounds import RoundLimits
from agent_workflow.core.routed import Action
from agent_workflow.core.wiring import Core
from agent_workflow.store import Store
from agent_workflow.store.schema import rounds
from agent_workflow.testing.agent import ScriptedAgent
from tests.conftest import FakeClock
from tests.core.helpers import make_core
from tests.core.worlds import World
from tests.support.events import BOT, REPO, TRUSTED, UNTRUSTED, event

COMMENTS = [("src/widgets.py", 3, "Rename `f` to `area`."), ("README.md", 1, "Say what it does.")]
FAILED = [
    CheckRun(1, "tests", "completed", "failure", "1 failed", "test_area", "", ("t.py:3: boom",))
]


async def _delivered(core: Core, store: Store, world: World) -> Task:
    """Plan and deliver the world's issue: the task with its open pull request."""
    await core.router.route(event(Intent.START_PLAN, world.issue))
    await core.router.route(event(Intent.APPROVE, world.issue))
    task = await store.tasks.find(REPO, world.issue)
    assert task is not None
    assert task.pr_number is not None
    assert task.head_sha  # deliver recorded the commit it pushed
    return task


def _review(task: Task, review_id: int, *, actor: str = TRUSTED, delivery: str | None = None):  # type: ignore[no-untyped-def]
    return event(
        Intent.REVISE,
        task.issue_number,
        actor=actor,
        pr_number=task.pr_number,
        delivery=delivery,
        round=RoundTrigger(f"review:{review_id}", review_id=review_id, instruction="Please."),
    )


def _checks(task: Task, sha: str, *, actor: str = "github-actions[bot]"):  # type: ignore[no-untyped-def]
    return event(
        Intent.REPAIR,
        task.issue_number,
        actor=actor,
        pr_number=task.pr_number,
        round=RoundTrigger(f"checks:{sha}", head_sha=sha),
    )


async def _rounds(store: Store) -> int:
    async with store.db.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(rounds))).scalar_one())


def _runs(agent: ScriptedAgent, phase: Phase) -> int:
    return sum(1 for c in agent.calls if c.phase is phase)


async def _pr_bodies(world: World, task: Task) -> list[str]:
    assert task.pr_number is not None
    return [c.body for c in await world.comments(task.pr_number) if c.author == BOT]


async def test_review__delivered_three_times_at_once__one_round_one_reply_per_thread(
    store: Store, clock: FakeClock, world: World
) -> None:
    agent = ScriptedAgent()
    core = make_core(store, clock, forge=world.forge, agent=agent)
    task = await _delivered(core, store, world)
    assert task.pr_number is not None
    review_id, comment_ids = await world.review(task.pr_number, COMMENTS)

    same = _review(task, review_id)
    routed = await asyncio.gather(*(core.router.route(same) for _ in range(3)))

    assert any(r.action is Action.RAN for r in routed)
    assert await _rounds(store) == 1
    assert _runs(agent, Phase.REVISE) == 1
    replies = await world.thread_replies(task.pr_number)
    assert sorted(r.in_reply_to_id or 0 for r in replies) == sorted(comment_ids)
    assert all(r.author == BOT for r in replies)
    summaries = [b for b in await _pr_bodies(world, task) if "## Review round 1" in b]
    assert len(summaries) == 1
    revise = await store.phases.get(task.id, Phase.REVISE)
    assert revise is not None
    assert (revise.status, revise.attempt, revise.effects_done) == (PhaseStatus.COMPLETE, 1, True)
    after = await store.tasks.get(task.id)
    assert after is not None
    assert after.head_sha != task.head_sha  # the round pushed a new head

    # Redelivered later, under another delivery id: still the one round.
    await core.router.route(_review(task, review_id))
    assert (await _rounds(store), _runs(agent, Phase.REVISE)) == (1, 1)
    assert len(await world.thread_replies(task.pr_number)) == 2

    # A second review is a second round.
    second, _ = await world.review(task.pr_number, [("src/widgets.py", 5, "And this.")])
    await core.router.route(_review(task, second))
    assert (await _rounds(store), _runs(agent, Phase.REVISE)) == (2, 2)
    assert len(await world.thread_replies(task.pr_number)) == 3
    assert any("## Review round 2" in b for b in await _pr_bodies(world, task))


async def test_command_on_the_pull_request__one_round_found_by_its_number(
    store: Store, clock: FakeClock, world: World
) -> None:
    agent = ScriptedAgent()
    core = make_core(store, clock, forge=world.forge, agent=agent)
    task = await _delivered(core, store, world)
    command = event(
        Intent.REVISE,
        0,  # a comment on a PR names only the PR
        pr_number=task.pr_number,
        round=RoundTrigger("comment:4242", comment_id=4242, instruction="rename the helper"),
    )
    for _ in range(2):
        await core.router.route(command)
    assert (await _rounds(store), _runs(agent, Phase.REVISE)) == (1, 1)
    assert agent.calls[-1].round is not None
    assert agent.calls[-1].round.trigger.instruction == "rename the helper"
    assert sum("## Review round 1" in b for b in await _pr_bodies(world, task)) == 1


async def test_review__untrusted_or_bot_reviewers_start_nothing(
    store: Store, clock: FakeClock, world: World
) -> None:
    agent = ScriptedAgent()
    core = make_core(store, clock, forge=world.forge, agent=agent)
    task = await _delivered(core, store, world)
    assert task.pr_number is not None
    review_id, _ = await world.review(task.pr_number, COMMENTS)
    await world.reset_calls()
    for actor in (UNTRUSTED, BOT, "dependabot[bot]"):
        routed = await core.router.route(_review(task, review_id, actor=actor))
        assert routed.action is Action.IGNORED
    assert (await _rounds(store), _runs(agent, Phase.REVISE)) == (0, 0)
    assert (await world.calls()).mutations == 0


async def test_review__before_the_pull_request_starts_nothing(
    store: Store, clock: FakeClock, world: World
) -> None:
    agent = ScriptedAgent()
    core = make_core(store, clock, forge=world.forge, agent=agent)
    await core.router.route(event(Intent.START_PLAN, world.issue))
    early = event(
        Intent.REVISE, world.issue, pr_number=1, round=RoundTrigger("review:1", review_id=1)
    )
    routed = await core.router.route(early)
    assert routed.action is Action.NOOP
    assert await _rounds(store) == 0


async def test_review__a_lost_reply_answer_is_reconciled_not_resent(
    store: Store, clock: FakeClock, world: World
) -> None:
    core = make_core(store, clock, forge=world.forge, agent=ScriptedAgent())
    task = await _delivered(core, store, world)
    assert task.pr_number is not None
    review_id, comment_ids = await world.review(task.pr_number, COMMENTS)
    await world.drop_response("reply_to_review_comment")

    await core.router.route(_review(task, review_id))

    replies = await world.thread_replies(task.pr_number)
    assert sorted(r.in_reply_to_id or 0 for r in replies) == sorted(comment_ids)
    assert (await world.faults_fired()).get("drop_response reply_to_review_comment") == 1


async def test_checks__one_repair_round_then_the_same_failure_blocks_once(
    store: Store, clock: FakeClock, world: World
) -> None:
    agent = ScriptedAgent()
    core = make_core(store, clock, forge=world.forge, agent=agent)
    task = await _delivered(core, store, world)
    assert task.head_sha is not None
    await world.fail_checks(task.head_sha, FAILED)

    for _ in range(2):  # check_run and check_suite events: one round
        await core.router.route(_checks(task, task.head_sha))
    assert (await _rounds(store), _runs(agent, Phase.REPAIR)) == (1, 1)
    assert sum("## CI repair round 1" in b for b in await _pr_bodies(world, task)) == 1

    repaired = await store.tasks.get(task.id)
    assert repaired is not None
    assert repaired.head_sha is not None
    assert repaired.head_sha != task.head_sha
    await world.fail_checks(repaired.head_sha, FAILED)  # the same failure again
    for _ in range(2):
        routed = await core.router.route(_checks(repaired, repaired.head_sha))
        assert routed.action is Action.NOOP
    assert (await _rounds(store), _runs(agent, Phase.REPAIR)) == (1, 1)
    blocked = [b for b in await _pr_bodies(world, task) if "failed again the same way" in b]
    assert len(blocked) == 1
    assert LABEL_BLOCKED in await world.labels(task.issue_number)


async def test_checks__on_a_commit_we_did_not_push_start_nothing(
    store: Store, clock: FakeClock, world: World
) -> None:
    agent = ScriptedAgent()
    core = make_core(store, clock, forge=world.forge, agent=agent)
    task = await _delivered(core, store, world)
    human = "f" * 40
    await world.fail_checks(human, FAILED)
    await world.reset_calls()
    routed = await core.router.route(_checks(task, human))
    assert routed.action is Action.NOOP
    assert (await _rounds(store), _runs(agent, Phase.REPAIR)) == (0, 0)
    assert await world.calls() == {}  # decided from the database alone


async def test_rounds__bounded_with_one_comment_past_the_limit(
    store: Store, clock: FakeClock, world: World
) -> None:
    agent = ScriptedAgent()
    core = make_core(
        store, clock, forge=world.forge, agent=agent, round_limits=RoundLimits(revise=1, repair=1)
    )
    task = await _delivered(core, store, world)
    assert task.pr_number is not None
    for n in range(3):
        review_id, _ = await world.review(task.pr_number, [("a.py", n + 1, f"change {n}")])
        await core.router.route(_review(task, review_id))
    assert (await _rounds(store), _runs(agent, Phase.REVISE)) == (1, 1)
    limits = [b for b in await _pr_bodies(world, task) if "the most allowed" in b]
    assert len(limits) == 1


async def test_pr_draft__the_delivered_pull_request_opens_as_a_draft(
    store: Store, clock: FakeClock, world: World
) -> None:
    for draft in (True, False):
        core = make_core(store, clock, forge=world.forge, agent=ScriptedAgent(), pr_draft=draft)
        issue = world.issue if draft else await world.new_issue()
        await core.router.route(event(Intent.START_PLAN, issue))
        await core.router.route(event(Intent.APPROVE, issue))
        pull = await world.forge.find_pull_request(REPO, f"agent/issue-{issue}")
        assert pull is not None
        assert pull.draft is draft


class _HeldAgent(ScriptedAgent):
    """The scripted agent, holding its revise run until `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def run(self, request: AgentRequest) -> AgentResult:
        if request.phase is Phase.REVISE:
            self.started.set()
            await self.release.wait()
        return await super().run(request)


async def test_rounds__a_review_round_and_a_repair_never_overlap(
    store: Store, clock: FakeClock, world: World
) -> None:
    agent = _HeldAgent()
    core = make_core(store, clock, forge=world.forge, agent=agent)
    task = await _delivered(core, store, world)
    assert task.pr_number is not None
    assert task.head_sha is not None
    review_id, _ = await world.review(task.pr_number, COMMENTS)
    await world.fail_checks(task.head_sha, FAILED)
    revising = asyncio.create_task(core.router.route(_review(task, review_id)))
    await agent.started.wait()

    # Both would work on the PR's branch: the repair waits, without reading GitHub.
    await world.reset_calls()
    with pytest.raises(PhaseBusy):
        await core.router.route(_checks(task, task.head_sha))
    assert await world.calls() == {}

    agent.release.set()
    await revising
    assert (await _rounds(store), _runs(agent, Phase.REPAIR)) == (1, 0)


async def test_review__a_refused_reply_loses_that_reply_not_the_round(
    store: Store, clock: FakeClock, world: World
) -> None:
    core = make_core(store, clock, forge=world.forge, agent=ScriptedAgent())
    task = await _delivered(core, store, world)
    assert task.pr_number is not None
    review_id, comment_ids = await world.review(task.pr_number, COMMENTS)
    await world.refuse("reply_to_review_comment", 422, times=1)  # e.g. a deleted comment

    await core.router.route(_review(task, review_id))

    revise = await store.phases.get(task.id, Phase.REVISE)
    assert revise is not None
    assert (revise.status, revise.effects_done) == (PhaseStatus.COMPLETE, True)
    assert len(await world.thread_replies(task.pr_number)) == len(comment_ids) - 1
    assert sum("## Review round 1" in b for b in await _pr_bodies(world, task)) == 1
