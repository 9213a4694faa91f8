"""The inbox's parsed event, on both engines: every `Event` field round-trips, the round
(a nested `RoundTrigger`) included, and rows stored before a field existed still read."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import insert

from agent_workflow.core.errors import BadEvent
from agent_workflow.core.model import Event, Intent, RoundTrigger
from agent_workflow.store import Store
from agent_workflow.store.deliveries import event_from_json, event_to_json
from agent_workflow.store.schema import deliveries

HOOK = "42"
REVISE = Event(
    delivery_id="d-revise",
    intent=Intent.REVISE,
    repo="octo/demo",
    issue_number=0,  # a comment on the pull request names only the PR
    actor="alice",
    pr_number=12,
    round=RoundTrigger(
        key=f"comment:{2**40}",
        review_id=2**35,
        comment_id=2**40,  # ids beyond 32 bits survive the JSON column
        instruction="Rename the helper.\n« and test it » — \U0001f600",
    ),
)
REPAIR = Event(
    delivery_id="d-repair",
    intent=Intent.REPAIR,
    repo="octo/demo",
    issue_number=7,
    actor="github-actions[bot]",
    actor_is_bot=True,
    clone_url="https://github.com/octo/demo.git",
    default_branch="trunk",
    pr_number=None,
    round=RoundTrigger(key="checks:" + "a" * 40, head_sha="a" * 40),
)
PLAN = Event(
    delivery_id="d-plan",
    intent=Intent.START_PLAN,
    repo="octo/demo",
    issue_number=7,
    actor="alice",
    title="Issue 7",
    body="It breaks.",
)


async def _insert(store: Store, delivery_id: str, parsed: dict[str, Any]) -> None:
    """A row as an older version (or anything else) wrote it, bypassing `record`."""
    row = {
        "delivery_id": delivery_id,
        "hook_id": HOOK,
        "event": "issues",
        "action": "labeled",
        "payload": {},
        "parsed": parsed,
        "received_at": 1.0,
    }
    async with store.engine.begin() as conn:
        await conn.execute(insert(deliveries), [row])


@pytest.mark.parametrize("event", [REVISE, REPAIR, PLAN], ids=["revise", "repair", "plan"])
async def test_parsed_event__round_trips_through_the_column(store: Store, event: Event) -> None:
    assert await store.deliveries.record(
        delivery_id=event.delivery_id,
        hook_id=HOOK,
        event="pull_request_review",
        action="submitted",
        payload={"action": "submitted"},
        parsed=event,
        now=1.0,
    )
    stored = await store.deliveries.to_route(event.delivery_id, HOOK)
    assert stored is not None
    assert stored.parsed == event
    assert stored.parsed.round is None or isinstance(stored.parsed.round, RoundTrigger)


async def test_parsed_event__row_stored_before_rounds__reads_without_a_round(
    store: Store,
) -> None:
    old = event_to_json(PLAN)
    del old["round"]
    await _insert(store, PLAN.delivery_id, old)
    stored = await store.deliveries.to_route(PLAN.delivery_id, HOOK)
    assert stored is not None
    assert stored.parsed == PLAN


@pytest.mark.parametrize(
    "stored_round",
    [
        "review:1",
        {"key": "review:1", "reviewer": "mallory"},  # a field RoundTrigger does not have
        {"review_id": 1},  # no key
    ],
)
async def test_parsed_event__malformed_round__bad_event(store: Store, stored_round: Any) -> None:
    await _insert(store, "d-bad", {**event_to_json(REVISE), "round": stored_round})
    with pytest.raises(BadEvent):
        await store.deliveries.to_route("d-bad", HOOK)


def test_event_to_json__round_is_an_object_of_its_fields() -> None:
    assert event_to_json(REPAIR)["round"] == {
        "key": "checks:" + "a" * 40,
        "review_id": None,
        "comment_id": None,
        "head_sha": "a" * 40,
        "instruction": "",
        "thread_id": None,
    }
    assert event_from_json(event_to_json(REPAIR)) == REPAIR
