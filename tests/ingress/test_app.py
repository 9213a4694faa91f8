"""The webhook endpoint in-process (ASGI), on SQLite and PostgreSQL.

Every refusal is checked twice: the status GitHub sees, and that the inbox holds
no row (an unverified or unusable delivery must leave no trace, DESIGN §4.1).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_workflow.core.errors import ConfigError
from agent_workflow.core.model import Intent
from agent_workflow.ingress import create_app, parse
from agent_workflow.store import Store
from agent_workflow.store.db import create_engine
from tests.conftest import FakeClock
from tests.ingress.conftest import TEST_MAX_BODY
from tests.ingress.helpers import (
    SECRET,
    TRIGGERS,
    Dispatched,
    checks_completed,
    commented,
    delivery_id,
    encode,
    labeled,
    pr_closed,
    pr_conversation,
    review_commented,
    review_submitted,
    signed_headers,
)

URL = "/webhooks/github"


async def _post(
    client: httpx.AsyncClient,
    payload: dict[str, Any],
    event: str = "issues",
    delivery: str | None = None,
    **overrides: str,
) -> tuple[httpx.Response, str]:
    delivery = delivery or delivery_id()
    body = encode(payload)
    headers = {**signed_headers(body, event, delivery), **overrides}
    return await client.post(URL, content=body, headers=headers), delivery


async def test_accepted__row_committed_then_dispatched(
    client: httpx.AsyncClient, store: Store, dispatched: Dispatched, clock: FakeClock
) -> None:
    response, delivery = await _post(client, labeled("agent"))

    assert (response.status_code, response.json()) == (202, {"status": "accepted"})
    row = await store.deliveries.get(delivery, "42")
    assert row is not None
    assert (row.event, row.action, row.received_at, row.routed_at) == (
        "issues",
        "labeled",
        clock.now,
        None,
    )
    assert row.payload == labeled("agent")
    assert dispatched.calls == [(delivery, "42")]
    stored = await store.deliveries.to_route(delivery, "42")
    assert stored is not None
    assert stored.parsed == parse("issues", labeled("agent"), delivery, TRIGGERS)


async def test_accepted__parsed_once_with_the_configured_triggers__stored_with_the_row(
    store: Store, dispatched: Dispatched
) -> None:
    """The app's triggers decide the event stored with the row. A label or a `/` command they
    do not know is kept without one: a repository's own triggers decide it when routed."""
    triggers = dataclasses.replace(TRIGGERS, plan_label="robot-go", retry_command="/again")
    app = create_app(
        store,
        dispatched,
        secret=SECRET,
        max_body_bytes=TEST_MAX_BODY,
        triggers=triggers,
        body_timeout_s=10.0,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://ingress"
    ) as client:
        default_label, ignored = await _post(client, labeled("agent"))
        custom_label, planned = await _post(client, labeled("robot-go"))
        custom_retry, retried = await _post(client, commented("/again"), "issue_comment")
        default_retry, deferred_retry = await _post(client, commented("/retry"), "issue_comment")

    answers = (default_label, custom_label, custom_retry, default_retry)
    assert [r.status_code for r in answers] == [202, 202, 202, 202]
    for kept in (ignored, deferred_retry):
        row = await store.deliveries.to_route(kept, "42")
        assert row is not None
        assert row.parsed is None
    intents = []
    for delivery in (planned, retried):
        stored = await store.deliveries.to_route(delivery, "42")
        assert stored is not None
        assert stored.parsed is not None
        intents.append(stored.parsed.intent)
    assert intents == [Intent.START_PLAN, Intent.RETRY]


async def test_accepted__without_hook_id_header__empty_hook_id(
    client: httpx.AsyncClient, store: Store, dispatched: Dispatched
) -> None:
    delivery = delivery_id()
    body = encode(commented("/approve"))
    headers = signed_headers(body, "issue_comment", delivery)
    del headers["x-github-hook-id"]

    response = await client.post(URL, content=body, headers=headers)

    assert response.status_code == 202
    assert await store.deliveries.get(delivery, "") is not None
    assert dispatched.calls == [(delivery, "")]


async def test_accepted__merged_agent_pr(client: httpx.AsyncClient, store: Store) -> None:
    response, delivery = await _post(client, pr_closed(), "pull_request")
    assert response.status_code == 202
    assert await store.deliveries.get(delivery, "42") is not None


async def test_duplicate__200_and_dispatched_once(
    client: httpx.AsyncClient, store: Store, dispatched: Dispatched
) -> None:
    first, delivery = await _post(client, labeled("agent"))
    second, _ = await _post(client, labeled("agent"), delivery=delivery)

    assert first.status_code == 202
    assert (second.status_code, second.json()) == (200, {"status": "duplicate"})
    assert dispatched.calls == [(delivery, "42")]


async def test_same_delivery_id_from_another_hook__a_separate_row(
    client: httpx.AsyncClient, store: Store, dispatched: Dispatched
) -> None:
    """Delivery ids are unique per hook: two hooks may share one (DESIGN §3).

    (Their bodies differ: the same body is one event, a duplicate from any hook.)
    """
    first, delivery = await _post(client, labeled("agent"))
    other, _ = await _post(
        client, labeled("agent", number=8), delivery=delivery, **{"x-github-hook-id": "9"}
    )
    assert (first.status_code, other.status_code) == (202, 202)
    assert dispatched.calls == [(delivery, "42"), (delivery, "9")]


async def test_on_accepted_raises__still_202_and_row_unrouted(
    client: httpx.AsyncClient, store: Store, dispatched: Dispatched
) -> None:
    """Window: the row is committed, then dispatching fails. The sweeper must find the row."""
    dispatched.error = RuntimeError("queue down")

    response, delivery = await _post(client, labeled("agent"))

    assert response.status_code == 202
    row = await store.deliveries.get(delivery, "42")
    assert row is not None
    assert row.routed_at is None
    assert [d.delivery_id for d in await store.deliveries.unrouted(float("inf"))] == [delivery]


async def test_on_accepted_hangs__202_after_the_timeout(
    client: httpx.AsyncClient, store: Store, dispatched: Dispatched
) -> None:
    dispatched.hang = True
    response, delivery = await _post(client, labeled("agent"))
    assert response.status_code == 202
    assert await store.deliveries.get(delivery, "42") is not None


def _unsigned(body: bytes, delivery: str) -> dict[str, str]:
    headers = signed_headers(body, "issues", delivery)
    del headers["x-hub-signature-256"]
    return headers


def _sha1(body: bytes) -> str:
    return "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()


@pytest.mark.parametrize("case", ["missing", "sha1-only", "wrong-secret", "malformed", "tampered"])
async def test_bad_signature__401_and_nothing_recorded(
    client: httpx.AsyncClient, store: Store, dispatched: Dispatched, case: str
) -> None:
    delivery = delivery_id()
    body = encode(labeled("agent"))
    headers = _unsigned(body, delivery)
    sent = body
    match case:
        case "sha1-only":
            headers["x-hub-signature"] = _sha1(body)
        case "wrong-secret":
            headers["x-hub-signature-256"] = signed_headers(body, "", "", secret="nope")[
                "x-hub-signature-256"
            ]
        case "malformed":
            headers["x-hub-signature-256"] = "sha256=not-hex"
        case "tampered":
            headers["x-hub-signature-256"] = signed_headers(body, "", "")["x-hub-signature-256"]
            sent = encode(labeled("agent", number=8))

    response = await client.post(URL, content=sent, headers=headers)

    assert response.status_code == 401
    assert "error" in response.json()
    assert await store.deliveries.get(delivery, "42") is None
    assert dispatched.calls == []


async def test_oversize_by_content_length__413_and_nothing_recorded(
    client: httpx.AsyncClient, store: Store
) -> None:
    payload = labeled("agent")
    payload["issue"]["body"] = "x" * TEST_MAX_BODY
    response, delivery = await _post(client, payload)
    assert response.status_code == 413
    assert await store.deliveries.get(delivery, "42") is None


async def test_oversize_chunked__413_and_reading_stops(
    client: httpx.AsyncClient, store: Store
) -> None:
    """No Content-Length: the cap must hold while streaming, not after buffering it all."""
    chunk = b"x" * 1024
    total_chunks = 10_000  # ~10 MB if it were all read
    pulled = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(total_chunks):
            pulled += 1
            yield chunk

    delivery = delivery_id()
    headers = signed_headers(b"", "issues", delivery)
    response = await client.post(URL, content=body(), headers=headers)

    assert response.status_code == 413
    assert pulled <= TEST_MAX_BODY // len(chunk) + 2
    assert await store.deliveries.get(delivery, "42") is None


async def test_chunked_within_cap__accepted(client: httpx.AsyncClient, store: Store) -> None:
    raw = encode(labeled("agent"))
    delivery = delivery_id()

    async def body() -> AsyncIterator[bytes]:
        for i in range(0, len(raw), 10):
            yield raw[i : i + 10]

    response = await client.post(
        URL, content=body(), headers=signed_headers(raw, "issues", delivery)
    )
    assert response.status_code == 202
    assert await store.deliveries.get(delivery, "42") is not None


@pytest.mark.parametrize(
    "raw", [b"{not json", b"[1,2,3]", b'"a string"', b"", b'{"a":"\xff"}', b'{"a":NaN}']
)
async def test_malformed_body__400_and_nothing_recorded(
    client: httpx.AsyncClient, store: Store, dispatched: Dispatched, raw: bytes
) -> None:
    delivery = delivery_id()
    response = await client.post(URL, content=raw, headers=signed_headers(raw, "issues", delivery))
    assert response.status_code == 400
    assert "error" in response.json()
    assert await store.deliveries.get(delivery, "42") is None
    assert dispatched.calls == []


async def test_handled_event_missing_fields__400_with_message(
    client: httpx.AsyncClient, store: Store
) -> None:
    payload = labeled("agent")
    del payload["issue"]["number"]
    response, delivery = await _post(client, payload)
    assert response.status_code == 400
    assert "issue.number" in response.json()["error"]
    assert await store.deliveries.get(delivery, "42") is None


@pytest.mark.parametrize(
    ("event", "payload", "intent"),
    [
        ("pull_request_review", review_submitted(), Intent.REVISE),
        ("pull_request_review_comment", review_commented("/agent rename it"), Intent.REVISE),
        ("issue_comment", pr_conversation("/agent rename it"), Intent.REVISE),
        ("issue_comment", pr_conversation("/agent fix ci"), Intent.REPAIR),
        ("check_suite", checks_completed("check_suite"), Intent.REPAIR),
        ("check_run", checks_completed("check_run"), Intent.REPAIR),
        ("workflow_run", checks_completed("workflow_run"), Intent.REPAIR),
    ],
)
async def test_round_events__accepted_and_stored_with_their_round(
    client: httpx.AsyncClient,
    store: Store,
    dispatched: Dispatched,
    event: str,
    payload: dict[str, Any],
    intent: Intent,
) -> None:
    """The events after the pull request pass the front door (real payloads) and are
    stored with the round they parsed to."""
    response, delivery = await _post(client, payload, event)
    assert (response.status_code, response.json()) == (202, {"status": "accepted"})
    stored = await store.deliveries.to_route(delivery, "42")
    assert stored is not None
    assert stored.parsed == parse(event, payload, delivery, TRIGGERS)
    assert stored.parsed is not None
    assert stored.parsed.intent is intent
    assert stored.parsed.round is not None
    assert dispatched.calls == [(delivery, "42")]


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("issues", {**labeled("bug"), "action": "unlabeled"}),
        ("issue_comment", commented("nice work")),
        ("issue_comment", commented("nice work\n/approve")),
        ("issue_comment", commented("/approve", pr=True)),
        ("issue_comment", pr_conversation("/agent plan")),
        ("pull_request_review", review_submitted("approved")),
        ("pull_request_review_comment", review_commented("Nit: a blank line here.")),
        ("check_suite", checks_completed("check_suite", "success")),
        ("check_run", checks_completed("check_run", branch="main")),
        ("pull_request", pr_closed("feature/x")),
        ("pull_request", pr_closed(merged=False)),
        ("push", {"ref": "refs/heads/main"}),
    ],
)
async def test_ignored__200_with_reason_and_nothing_recorded(
    client: httpx.AsyncClient,
    store: Store,
    dispatched: Dispatched,
    event: str,
    payload: dict[str, Any],
) -> None:
    response, delivery = await _post(client, payload, event)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert response.json()["reason"]
    assert await store.deliveries.get(delivery, "42") is None
    assert dispatched.calls == []


@pytest.mark.parametrize(
    ("event", "payload"),
    [("issues", labeled("robot-go")), ("issue_comment", commented("/robot plan"))],
)
async def test_not_our_trigger_but_could_be_a_repositorys__kept_without_an_event(
    client: httpx.AsyncClient,
    store: Store,
    dispatched: Dispatched,
    event: str,
    payload: dict[str, Any],
) -> None:
    """A label or `/` command our triggers do not know is stored and dispatched without an
    event: the repository's settings (read when it is routed) decide it."""
    response, delivery = await _post(client, payload, event)
    assert response.status_code == 202
    row = await store.deliveries.to_route(delivery, "42")
    assert row is not None
    assert row.parsed is None
    assert dispatched.calls == [(delivery, "42")]


async def test_ping__pong(client: httpx.AsyncClient, store: Store) -> None:
    response, delivery = await _post(client, {"zen": "Design for failure.", "hook_id": 42}, "ping")
    assert (response.status_code, response.json()) == (200, {"status": "pong"})
    assert await store.deliveries.get(delivery, "42") is None


@pytest.mark.parametrize("header", ["x-github-event", "x-github-delivery"])
async def test_missing_github_header__400(
    client: httpx.AsyncClient, store: Store, header: str
) -> None:
    body = encode(labeled("agent"))
    delivery = delivery_id()
    headers = signed_headers(body, "issues", delivery)
    del headers[header]
    response = await client.post(URL, content=body, headers=headers)
    assert response.status_code == 400
    assert await store.deliveries.get(delivery, "42") is None


async def test_overlong_delivery_id__400_not_a_database_error(
    client: httpx.AsyncClient, store: Store
) -> None:
    response, _ = await _post(client, labeled("agent"), delivery="d" * 201)
    assert response.status_code == 400


async def test_nul_in_comment__stored_on_both_databases(
    client: httpx.AsyncClient, store: Store
) -> None:
    """PostgreSQL's jsonb refuses \\u0000; the delivery must not be lost to that."""
    payload = commented("/approve")
    payload["issue"]["body"] = "pasted\u0000binary \ud800"
    body = encode(payload)  # json.dumps escapes both as \\uXXXX, as GitHub would
    delivery = delivery_id()
    response = await client.post(
        URL, content=body, headers=signed_headers(body, "issue_comment", delivery)
    )
    assert response.status_code == 202
    row = await store.deliveries.get(delivery, "42")
    assert row is not None
    assert row.payload["issue"]["body"] == "pasted\ufffdbinary \ufffd"


async def test_get_on_webhook__405(client: httpx.AsyncClient) -> None:
    assert (await client.get(URL)).status_code == 405


async def test_healthz__ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.parametrize("backend", ["postgres-unreachable", "sqlite-not-a-database"])
async def test_healthz__database_down__503(
    backend: str, dispatched: Dispatched, tmp_path: Path
) -> None:
    # A SQLite file that fails to *open* is avoided on purpose: aiosqlite then
    # answers from its worker thread after the test's loop closed (a library race).
    junk = tmp_path / "aw.db"
    junk.write_bytes(b"not a database " * 512)
    url = {
        "postgres-unreachable": "postgresql://postgres@127.0.0.1:1/nowhere",
        "sqlite-not-a-database": f"sqlite:///{junk}",
    }[backend]
    broken = Store(create_engine(url))
    app = create_app(
        broken,
        dispatched,
        secret=SECRET,
        max_body_bytes=TEST_MAX_BODY,
        triggers=TRIGGERS,
        body_timeout_s=10.0,
    )
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://ingress"
        ) as client:
            response = await client.get("/healthz")
    finally:
        await broken.close()
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"


async def test_database_down__503_not_acknowledged(dispatched: Dispatched) -> None:
    """Window: the insert fails. No 2xx may be sent, so GitHub shows the delivery as failed."""
    broken = Store(create_engine("postgresql://postgres@127.0.0.1:1/nowhere"))
    app = create_app(
        broken,
        dispatched,
        secret=SECRET,
        max_body_bytes=TEST_MAX_BODY,
        triggers=TRIGGERS,
        body_timeout_s=10.0,
    )
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://ingress"
        ) as client:
            response, _ = await _post(client, labeled("agent"))
    finally:
        await broken.close()
    assert response.status_code == 503
    assert dispatched.calls == []


def test_create_app__no_secret__config_error(store: Store, dispatched: Dispatched) -> None:
    with pytest.raises(ConfigError, match="secret"):
        create_app(
            store,
            dispatched,
            secret="",
            max_body_bytes=TEST_MAX_BODY,
            triggers=TRIGGERS,
            body_timeout_s=10.0,
        )


def test_create_app__non_positive_cap__config_error(store: Store, dispatched: Dispatched) -> None:
    with pytest.raises(ConfigError):
        create_app(
            store,
            dispatched,
            secret=SECRET,
            max_body_bytes=0,
            triggers=TRIGGERS,
            body_timeout_s=10.0,
        )
