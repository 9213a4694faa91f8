"""The rounds table: what GitHub hands us is storable, and a zombie cannot move the head."""

from __future__ import annotations

import pytest

from agent_workflow.core.errors import LeaseLost
from agent_workflow.core.model import Guard, Phase, RoundTrigger
from agent_workflow.core.ports import ReviewComment, RoundOpened, RoundWork
from agent_workflow.store import Store
from tests.support.events import task_info


async def test_open__nul_and_lone_surrogates_from_github_are_stored_replaced(
    store: Store,
) -> None:
    task = await store.tasks.ensure(task_info(), 1.0)
    hostile = "rename\x00this \ud800 please"
    work = RoundWork(
        RoundTrigger("review:1", review_id=1, instruction=hostile),
        comments=(ReviewComment(5, hostile, "rev", "a.py", 1, "@@\x00@@"),),
    )
    opened = await store.rounds.open(task.id, Phase.REVISE, work, "d-1", 5, 2.0)
    assert opened is RoundOpened.OPENED
    found = await store.rounds.find(task.id, Phase.REVISE, "review:1")
    assert found is not None
    assert found.work.comments[0].body == "rename\ufffdthis \ufffd please"
    assert found.work.trigger.instruction == "rename\ufffdthis \ufffd please"


async def test_record_push__a_stale_fence_moves_nothing(store: Store) -> None:
    task = await store.tasks.ensure(task_info(), 1.0)
    work = RoundWork(RoundTrigger("review:1", review_id=1))
    await store.rounds.open(task.id, Phase.REVISE, work, "d-1", 5, 2.0)
    claimed = await store.phases.claim(task.id, Phase.REVISE, "w1", 30.0, 3.0)
    assert claimed is not None
    await store.rounds.record_push(task.id, Phase.REVISE, 1, "a" * 40, claimed.guard, 4.0)
    stale = Guard(claimed.guard.run_id, claimed.guard.fence - 1)
    with pytest.raises(LeaseLost):
        await store.rounds.record_push(task.id, Phase.REVISE, 1, "b" * 40, stale, 5.0)
    after = await store.tasks.get(task.id)
    assert after is not None
    assert after.head_sha == "a" * 40
    pushed = await store.rounds.get(task.id, Phase.REVISE, 1)
    assert pushed is not None
    assert pushed.pushed_sha == "a" * 40
