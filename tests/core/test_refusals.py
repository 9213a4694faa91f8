"""Definite refusals are terminal, and nothing internal is published (issue 10).

A GitHub answer no resend can change (422, 403 on a locked issue, 410 a deleted one)
ends the phase `failed` with a short reason, in a bounded number of requests, with one
comment where the issue still accepts comments and none where it does not; routing or
sweeping that phase again sends nothing. The blocked comment names a reason class and a
correlation id; stderr, exception text and paths stay in the database.

Both worlds: the twin's `refuse` fault and the emulator's `refuse` rule (the REST
adapter classifies the 4xx itself).
"""

from __future__ import annotations

import pytest

from agent_workflow.core.effects import Effect, EffectKind, EffectStatus, effect_key
from agent_workflow.core.errors import EffectRefused
from agent_workflow.core.hooks import correlation_id
from agent_workflow.core.ledger import Scope
from agent_workflow.core.model import Intent, Phase, PhaseStatus
from agent_workflow.core.ports import AgentRequest, AgentResult, Outcome
from agent_workflow.core.wiring import Core
from agent_workflow.store import Store
from agent_workflow.testing.agent import ScriptedAgent
from tests.conftest import FakeClock
from tests.core.helpers import LEASE_S, make_core
from tests.core.worlds import World
from tests.support.events import BOT, REPO, event, task_info


async def _settle_again(core: Core, clock: FakeClock, world: World, task_id: int) -> None:
    """Route the start again and sweep every phase after every lease expired, twice."""
    for n in range(2):
        clock.advance(LEASE_S + 1)
        await core.router.route(event(Intent.START_PLAN, world.issue, delivery=f"again-{n}"))
        for run in await core.store.phases.for_task(task_id):
            await core.router.resume(task_id, run.phase)


def _not_trust(calls: dict[str, int]) -> dict[str, int]:
    """Calls to GitHub apart from permission reads: `_settle_again` outlasts the permission
    TTL, so the actor may be looked up again (that is trust, not an effect's request)."""
    return {op: n for op, n in calls.items() if op != "permission"}


async def _effect_statuses(store: Store, issue: int) -> dict[str, EffectStatus]:
    task = await store.tasks.find(REPO, issue)
    assert task is not None
    return {r.key.rsplit("/", 1)[-1]: r.status for r in await store.effects.for_task(task.id)}


async def test_refusal__422_on_plan_comment_fails_the_phase_with_one_comment(
    store: Store, clock: FakeClock, world: World
) -> None:
    """The plan comment is refused (422) once: the phase is `failed`, one blocked comment
    says GitHub refused an update; three mutations in all; nothing is ever resent."""
    await world.refuse("create_comment", 422, times=1)
    core = make_core(store, clock, forge=world.forge, agent=ScriptedAgent())

    routed = await core.router.route(event(Intent.START_PLAN, world.issue))

    assert routed.status is PhaseStatus.FAILED
    [comment] = await world.comments(world.issue)
    assert comment.author == BOT
    assert comment.body.startswith("**agent-blocked**")
    assert "GitHub refused an update" in comment.body
    assert await world.labels(world.issue) == {"agent-blocked"}
    bounded = {"permission": 1, "create_comment": 2, "add_labels": 1}
    assert await world.calls() == bounded
    task = await store.tasks.find(REPO, world.issue)
    assert task is not None
    run = await store.phases.get(task.id, Phase.PLAN)
    assert run is not None
    assert run.effects_done
    assert run.blocked_reason is not None
    assert "422" in run.blocked_reason
    assert await _effect_statuses(store, world.issue) == {
        "plan-comment": EffectStatus.REFUSED,
        "planned-label": EffectStatus.REFUSED,  # never sent: given up with it
        "blocked-comment": EffectStatus.DONE,
        "blocked-label": EffectStatus.DONE,
    }

    await _settle_again(core, clock, world, task.id)

    assert _not_trust(await world.calls()) == _not_trust(bounded)  # nothing resent or read
    assert len(await world.comments(world.issue)) == 1


@pytest.mark.parametrize("status", [403, 410])
async def test_refusal__issue_refusing_comments_fails_the_phase_without_any(
    store: Store, clock: FakeClock, world: World, status: int
) -> None:
    """A locked (403) or deleted (410) issue refuses every comment: the plan comment is
    refused, the blocked comment too, and the phase settles `failed` without it: two
    comment requests, no label, and nothing more on later routes and sweeps."""
    await world.refuse("create_comment", status)  # until cleared
    core = make_core(store, clock, forge=world.forge, agent=ScriptedAgent())

    routed = await core.router.route(event(Intent.START_PLAN, world.issue))

    assert routed.status is PhaseStatus.FAILED
    assert await world.comments(world.issue) == []
    bounded = {"permission": 1, "create_comment": 2}
    assert await world.calls() == bounded
    task = await store.tasks.find(REPO, world.issue)
    assert task is not None
    run = await store.phases.get(task.id, Phase.PLAN)
    assert run is not None
    assert run.status is PhaseStatus.FAILED
    assert run.effects_done
    statuses = await _effect_statuses(store, world.issue)
    assert set(statuses.values()) == {EffectStatus.REFUSED}, statuses

    await _settle_again(core, clock, world, task.id)

    assert _not_trust(await world.calls()) == _not_trust(bounded)


async def test_refusal__pull_request_refused_fails_deliver_with_one_comment(
    store: Store, clock: FakeClock, world: World
) -> None:
    """Opening the pull request is refused (an archived repository, a bad title: 422):
    the deliver phase is `failed` with one comment; a sweep sends nothing more."""
    core = make_core(store, clock, forge=world.forge, agent=ScriptedAgent())
    await core.router.route(event(Intent.START_PLAN, world.issue))
    await world.refuse("open_pull_request", 422)
    await world.reset_calls()

    routed = await core.router.route(event(Intent.APPROVE, world.issue))

    assert routed.status is PhaseStatus.FAILED
    assert await world.pulls() == []
    blocked = [c for c in await world.comments(world.issue) if "agent-blocked" in c.body]
    assert len(blocked) == 1
    assert "GitHub refused an update" in blocked[0].body
    calls = await world.calls()
    assert calls.get("open_pull_request") == 1
    assert calls.get("create_comment") == 1
    task = await store.tasks.find(REPO, world.issue)
    assert task is not None

    await _settle_again(core, clock, world, task.id)

    assert _not_trust(await world.calls()) == _not_trust(calls)


INTERNALS = (
    "Traceback (most recent call last)",
    "/srv/aw/workspaces/7/repo",
    "fatal: could not read Username for 'https://github.com'",
    "PermissionError(13, 'Permission denied')",
)


class LeakyAgent:
    """Blocks (or crashes) with a reason full of internals."""

    def __init__(self, *, crash: bool) -> None:
        self.crash = crash

    async def run(self, request: AgentRequest) -> AgentResult:
        if self.crash:
            raise RuntimeError(f"git clone failed in {INTERNALS[1]}: {INTERNALS[2]}")
        return AgentResult(Outcome.BLOCKED, reason="\n".join(INTERNALS))


@pytest.mark.parametrize(
    ("crash", "reason_class"),
    [(False, "the agent reported it is blocked"), (True, "the agent kept failing")],
)
async def test_blocked_comment__publishes_a_reason_class_and_correlation_id_only(
    store: Store, clock: FakeClock, world: World, crash: bool, reason_class: str
) -> None:
    """Stderr, paths, URLs and exception reprs stay in `blocked_reason`; the comment
    carries the reason class and the correlation id of the stored row."""
    core = make_core(store, clock, forge=world.forge, agent=LeakyAgent(crash=crash))  # type: ignore[arg-type]

    await core.router.route(event(Intent.START_PLAN, world.issue))

    [comment] = await world.comments(world.issue)
    task = await store.tasks.find(REPO, world.issue)
    assert task is not None
    run = await store.phases.get(task.id, Phase.PLAN)
    assert run is not None
    assert f"Reason: {reason_class}." in comment.body
    assert f"`{correlation_id(run)}`" in comment.body
    assert correlation_id(run) == f"run-{run.id}.{run.attempt}"
    for secret in ("Traceback", "/srv/", "fatal:", "https://", "PermissionError", "RuntimeError"):
        assert secret not in comment.body, secret
    assert run.blocked_reason is not None
    assert INTERNALS[1] in run.blocked_reason  # kept for operators


async def test_ledger__a_refused_effect_is_never_sent_again(
    store: Store, clock: FakeClock, world: World
) -> None:
    """Recovery point 5: a `refused` row raises at once, with no request (a crash after
    the refusal, before the phase was failed, must not loop on GitHub's answer)."""
    await world.refuse("create_comment", 422)
    core = make_core(store, clock, forge=world.forge, agent=ScriptedAgent())
    task = await store.tasks.ensure(task_info(world.issue), clock())
    ctx_key = effect_key(REPO, world.issue, Phase.PLAN, 1, "plan-comment")
    effect = Effect(ctx_key, EffectKind.COMMENT, REPO, world.issue, body="the plan")
    scope = Scope(task.id, "plan", 1, None)

    for _ in range(3):
        with pytest.raises(EffectRefused):
            await core.ledger.perform(effect, scope)

    assert await world.calls() == {"create_comment": 1}
    assert await _effect_statuses(store, world.issue) == {"plan-comment": EffectStatus.REFUSED}


async def test_hint__refused_by_a_locked_issue_is_dropped_and_not_resent(
    store: Store, clock: FakeClock, world: World
) -> None:
    """The plan is blocked on a locked issue (its comment refused: settled without it);
    `/approve` too early would hint, the hint is refused once and never sent again."""
    await world.refuse("create_comment", 403)
    agent = ScriptedAgent(outcomes={Phase.PLAN: Outcome.BLOCKED})
    core = make_core(store, clock, forge=world.forge, agent=agent)
    routed = await core.router.route(event(Intent.START_PLAN, world.issue))
    assert routed.status is PhaseStatus.BLOCKED

    for n in range(3):
        await core.router.route(event(Intent.APPROVE, world.issue, delivery=f"approve-{n}"))

    assert (await world.calls()).get("create_comment") == 2  # the blocked comment, one hint
    assert await world.comments(world.issue) == []
