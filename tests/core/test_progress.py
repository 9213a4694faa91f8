"""Live progress: one comment per phase attempt, edited in place, fenced.

Each scenario runs on both GitHubs (`world`) and both databases (`store`). Throttling is
by the core's clock: the fake clock is moved by hand (or by a helper task while the
scripted agent works), so "one edit per interval" is exact, not a matter of timing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from agent_workflow.core.effects import EffectStatus, effect_key
from agent_workflow.core.model import Intent, Phase, PhaseStatus, RoundTrigger
from agent_workflow.core.ports import Comment, Forge
from agent_workflow.core.progress import PROGRESS_EFFECT
from agent_workflow.core.runner import Executed
from agent_workflow.store import Store
from agent_workflow.testing.agent import ScriptedAgent
from tests.conftest import FakeClock
from tests.core.helpers import LEASE_S, MARKERS, make_core
from tests.core.worlds import World
from tests.support.events import BOT, REPO, event

INTERVAL = 1.0  # fake-clock seconds between edits


def progress_marker(issue: int, phase: Phase = Phase.PLAN, attempt: int = 1) -> str:
    """The hidden marker of the attempt's progress comment."""
    return MARKERS.marker(effect_key(REPO, issue, phase, attempt, PROGRESS_EFFECT))


def progress_comments(comments: list[Comment], issue: int) -> list[Comment]:
    """The bot's comments that carry the plan attempt's progress marker."""
    marker = progress_marker(issue)
    return [c for c in comments if c.author == BOT and c.body.rstrip().endswith(marker)]


@contextlib.asynccontextmanager
async def time_passing(clock: FakeClock, step: float, every_s: float) -> AsyncIterator[None]:
    """Move the fake clock `step` forward every `every_s` real seconds inside the block."""

    async def tick() -> None:
        while True:
            await asyncio.sleep(every_s)
            clock.advance(step)

    ticker = asyncio.create_task(tick())
    try:
        yield
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)


class CountingForge:
    """A worker's forge that counts the progress edits it sends."""

    def __init__(self, inner: Forge) -> None:
        self._inner = inner
        self.edits = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def edit_comment(self, repo: str, comment_id: int, body: str) -> None:
        self.edits += 1
        await self._inner.edit_comment(repo, comment_id, body)


async def test_progress__one_comment_edited_in_place_and_ends_with_the_outcome(
    store: Store, clock: FakeClock, world: World
) -> None:
    """A long scripted plan: one progress comment, posted when the agent starts, edited
    several times while it works (never posted again), the last edit saying it is done."""
    agent = ScriptedAgent(duration_s=1.0, progress_steps=5)
    core = make_core(store, clock, forge=world.forge, agent=agent, progress_interval_s=INTERVAL)

    # Two intervals pass between two reports of the agent; ten in all, inside the lease.
    async with time_passing(clock, step=INTERVAL / 2, every_s=0.05):
        routed = await core.router.route(event(Intent.START_PLAN, world.issue))

    assert routed.status is PhaseStatus.COMPLETE
    comments = await world.comments(world.issue)
    [progress] = progress_comments(comments, world.issue)
    assert [c.id for c in comments].index(progress.id) == 0  # posted before the plan
    assert len(comments) == 2
    assert comments[1].body.startswith("## Implementation plan")
    assert progress.body.startswith("### Agent progress: plan (attempt 1)")
    assert "✅ Done: the plan is in the comment below." in progress.body
    assert "Scripted step 1" in progress.body
    calls = await world.calls()
    assert calls["create_comment"] == 2  # the progress comment and the plan: never re-posted
    assert calls["edit_comment"] >= 3  # at least two while working, then the last one
    assert calls.reads == 1  # the actor's permission; no reconciliation read (G6)
    task = await store.tasks.find(REPO, world.issue)
    assert task is not None
    key = effect_key(REPO, world.issue, Phase.PLAN, 1, PROGRESS_EFFECT)
    assert {r.key: r.status for r in await store.effects.for_task(task.id)}[key] is (
        EffectStatus.DONE
    )


async def test_progress__edits_are_throttled_to_the_interval(
    store: Store, clock: FakeClock, world: World
) -> None:
    """The clock does not move: however often the agent reports, no edit goes out while it
    works; the last edit (after the plan) is the only one."""
    agent = ScriptedAgent(duration_s=0.3, progress_steps=6)
    core = make_core(store, clock, forge=world.forge, agent=agent, progress_interval_s=INTERVAL)

    await core.router.route(event(Intent.START_PLAN, world.issue))

    calls = await world.calls()
    assert calls["edit_comment"] == 1
    [progress] = progress_comments(await world.comments(world.issue), world.issue)
    assert "✅ Done" in progress.body


async def test_progress__a_zombie_never_edits_and_the_takeover_adopts_the_comment(
    store: Store, clock: FakeClock, world: World
) -> None:
    """Worker A posts the progress comment, then stalls past its lease while its agent
    still reports; worker B takes the same attempt over. B adopts A's comment (no second
    one) and writes the last edit; A, waking up, sends no edit (G5): the comment ends with
    B's outcome, not A's stale progress."""
    forge_a = CountingForge(world.forge)
    agent_a = ScriptedAgent(duration_s=0.8, progress_steps=8)
    core_a = make_core(
        store,
        clock,
        forge=forge_a,  # type: ignore[arg-type]  # the Forge methods, through __getattr__
        agent=agent_a,
        progress_interval_s=INTERVAL,
    )
    core_b = make_core(
        store,
        clock,
        forge=await world.another_forge(),
        agent=ScriptedAgent(progress_steps=2),
        owner="worker-b",
        progress_interval_s=INTERVAL,
    )
    a = asyncio.create_task(core_a.router.route(event(Intent.START_PLAN, world.issue)))

    async def posted() -> list[Comment]:
        return progress_comments(await world.comments(world.issue), world.issue)

    for _ in range(200):
        if await posted():
            break
        await asyncio.sleep(0.01)
    [first] = await posted()
    clock.advance(LEASE_S + 1)  # A's lease is gone; its agent goes on reporting
    task = await store.tasks.find(REPO, world.issue)
    assert task is not None
    taken = await core_b.runner.execute(task, Phase.PLAN)
    assert taken.status is PhaseStatus.COMPLETE

    await a  # A's agent reported for 0.8 s more, with the clock past every interval
    assert forge_a.edits == 0
    [progress] = await posted()
    assert progress.id == first.id
    assert "✅ Done: the plan is in the comment below." in progress.body
    comments = await world.comments(world.issue)
    assert len(comments) == 2  # the one progress comment and the plan
    calls = await world.calls()
    assert calls["create_comment"] == 2
    assert (await core_b.runner.execute(task, Phase.PLAN)).result is Executed.SETTLED


async def test_progress__every_phase_and_round_has_one_comment_where_its_others_go(
    store: Store, clock: FakeClock, world: World
) -> None:
    """Plan, deliver and two review rounds, progress on: one progress comment per attempt
    (the phases' on the issue, the rounds' on the pull request), each finished with its
    outcome; GitHub is asked only for mutations beyond the actor's permission and the
    review's comments the round needs (G6)."""
    core = make_core(
        store, clock, forge=world.forge, agent=ScriptedAgent(), progress_interval_s=INTERVAL
    )
    issue = world.issue
    await core.router.route(event(Intent.START_PLAN, issue))
    await core.router.route(event(Intent.APPROVE, issue))
    task = await store.tasks.find(REPO, issue)
    assert task is not None
    assert task.pr_number is not None
    for n in (1, 2):
        review_id, _ = await world.review(task.pr_number, [("src/widgets.py", n, "Change it.")])
        trigger = RoundTrigger(f"review:{review_id}", review_id=review_id, instruction="Do.")
        await core.router.route(
            event(Intent.REVISE, issue, pr_number=task.pr_number, round=trigger)
        )

    on_issue = await world.comments(issue)
    for phase, ending in ((Phase.PLAN, "the plan"), (Phase.DELIVER, "opened pull request")):
        [one] = [c for c in on_issue if c.body.rstrip().endswith(progress_marker(issue, phase))]
        assert f"### Agent progress: {phase} (attempt 1)" in one.body
        assert ending in one.body
    assert f"opened pull request #{task.pr_number}." in on_issue[2].body  # deliver's progress
    on_pr = await world.comments(task.pr_number)
    for attempt in (1, 2):
        marker = progress_marker(issue, Phase.REVISE, attempt)
        [one] = [c for c in on_pr if c.body.rstrip().endswith(marker)]
        assert f"✅ Done: round {attempt}, summary below." in one.body
    calls = await world.calls()
    assert calls["create_comment"] == 2 + 2 + 2 * 2  # per phase/round: progress + its own
    assert calls["edit_comment"] == 4  # the last edit of each (the clock did not move)
    assert "list_comments" not in calls
