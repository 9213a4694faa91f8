"""Hostile input is normal input (issue 10 §5, §6), in-process (ASGI), on both engines.

Every refusal is checked twice: the status, and that the inbox holds no new row.
"""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import func, select

from agent_workflow.store import Store
from agent_workflow.store.schema import deliveries
from tests.ingress.helpers import (
    Dispatched,
    commented,
    delivery_id,
    encode,
    labeled,
    signed_headers,
)

URL = "/webhooks/github"


async def rows(store: Store) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(deliveries))).scalar_one())


@pytest.mark.parametrize(
    ("delivery", "hook"),
    [
        ("a" * 195, "42"),  # the id that once made every sweeper pass raise
        ("a" * 65, "42"),
        ("abc/def-0000", "42"),
        ("abc def", "42"),
        ("abc:def", "42"),
        ("abc%3Adef", "42"),
        ("0000aaaa-bbbb", "4x2"),
        ("0000aaaa-bbbb", "-1"),
        ("0000aaaa-bbbb", "1" * 21),
    ],
    ids=[
        "id-195",
        "id-65",
        "id-slash",
        "id-space",
        "id-colon",
        "id-percent",
        "hook-x",
        "hook-minus",
        "hook-21",
    ],
)
async def test_unusable_delivery_or_hook_id__400_nothing_stored(
    client: httpx.AsyncClient, store: Store, dispatched: Dispatched, delivery: str, hook: str
) -> None:
    body = encode(labeled("agent"))
    headers = signed_headers(body, "issues", delivery, hook_id=hook)

    response = await client.post(URL, content=body, headers=headers)

    assert response.status_code == 400, response.text
    assert await rows(store) == 0
    assert dispatched.calls == []


async def test_github_shaped_ids__accepted(
    client: httpx.AsyncClient, store: Store, dispatched: Dispatched
) -> None:
    """A GUID, a hook id of 10 digits, and no hook id at all (older senders) pass."""
    guid = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    for number, hook in ((1, "4234567890"), (2, "")):
        body = encode(labeled("agent", number=number))
        headers = signed_headers(body, "issues", f"{guid[:-1]}{number}", hook_id=hook)
        response = await client.post(URL, content=body, headers=headers)
        assert response.status_code == 202, response.text
    assert await rows(store) == 2


async def test_same_body_under_a_new_delivery_id__duplicate_starts_nothing(
    client: httpx.AsyncClient, store: Store, dispatched: Dispatched
) -> None:
    """The signature covers only the body: a replayed `/retry` under a fresh id is a duplicate.

    GitHub's own "Redeliver" (same body, new id) gets the same answer: the first copy is
    stored and routed at least once by the sweeper, so nothing is lost by refusing it.
    """
    body = encode(commented("/retry"))
    first_id, replay_id, other_hook = delivery_id(), delivery_id(), delivery_id()

    first = await client.post(
        URL, content=body, headers=signed_headers(body, "issue_comment", first_id)
    )
    replay = await client.post(
        URL, content=body, headers=signed_headers(body, "issue_comment", replay_id)
    )
    elsewhere = await client.post(
        URL, content=body, headers=signed_headers(body, "issue_comment", other_hook, hook_id="7")
    )

    assert first.status_code == 202
    assert [(r.status_code, r.json()) for r in (replay, elsewhere)] == [
        (200, {"status": "duplicate"})
    ] * 2
    assert dispatched.calls == [(first_id, "42")]
    assert await rows(store) == 1
    assert await store.deliveries.get(replay_id, "42") is None


@pytest.mark.parametrize("depth", [100, 900, 20_000])
async def test_deeply_nested_body__400_nothing_stored(
    client: httpx.AsyncClient, store: Store, dispatched: Dispatched, depth: int
) -> None:
    payload = labeled("agent")
    nested = "[" * depth + "]" * depth
    text = json.dumps(payload)[:-1] + f', "extra": {nested}}}'
    body = text.encode()

    response = await client.post(
        URL, content=body, headers=signed_headers(body, "issues", delivery_id())
    )

    assert response.status_code == 400, response.text
    assert await rows(store) == 0
    assert dispatched.calls == []
