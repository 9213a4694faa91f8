"""The ingress behind a real uvicorn server on 127.0.0.1: races, streaming, GitHub's own wire.

These go through sockets, h11 and uvicorn's request cycle, where in-process ASGI
tests cannot see concurrency between connections or a body cut short.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from agent_workflow.core.model import Intent
from agent_workflow.store import Store
from github_emulator import EmulatorServer, serve_app
from tests.ingress.conftest import TEST_MAX_BODY
from tests.ingress.helpers import (
    SECRET,
    Dispatched,
    delivery_id,
    encode,
    labeled,
    signed_headers,
)

URL = "/webhooks/github"
COPIES = 50


async def test_concurrent_copies_of_one_delivery__one_row_one_dispatch(
    served: httpx.AsyncClient, store: Store, dispatched: Dispatched
) -> None:
    """Window: 50 redeliveries race between the duplicate check and the insert.

    Each request runs on its own connection and its own database connection; the
    unique (delivery, hook) constraint alone decides the single winner.
    """
    body = encode(labeled("agent"))
    delivery = delivery_id()
    headers = signed_headers(body, "issues", delivery)

    responses = await asyncio.gather(
        *(served.post(URL, content=body, headers=headers) for _ in range(COPIES))
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * (COPIES - 1) + [202]
    assert {r.json()["status"] for r in responses} == {"accepted", "duplicate"}
    assert dispatched.calls == [(delivery, "42")]
    assert [d.delivery_id for d in await store.deliveries.unrouted(float("inf"))] == [delivery]


async def test_oversize__413_over_the_wire(served: httpx.AsyncClient, store: Store) -> None:
    payload = labeled("agent")
    payload["issue"]["body"] = "x" * (TEST_MAX_BODY + 1)
    body = encode(payload)
    delivery = delivery_id()

    declared = await served.post(
        URL, content=body, headers=signed_headers(body, "issues", delivery)
    )

    async def chunked() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 4096):
            yield body[i : i + 4096]

    streamed = await served.post(
        URL, content=chunked(), headers=signed_headers(body, "issues", delivery)
    )

    assert (declared.status_code, streamed.status_code) == (413, 413)
    assert await store.deliveries.get(delivery, "42") is None


async def test_healthz__over_the_wire(served: httpx.AsyncClient) -> None:
    response = await served.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.fixture
async def ingress_url(app: Starlette) -> AsyncIterator[str]:
    """The webhook URL of the ingress served on uvicorn."""
    async with serve_app(app) as url:
        yield f"{url}{URL}"


async def test_github_emulator_deliveries__end_to_end(
    ingress_url: str, store: Store, dispatched: Dispatched
) -> None:
    """Payloads and headers exactly as the GitHub emulator sends them, signatures included."""
    repo = "octo/demo"
    async with EmulatorServer(token="t", webhook_url=ingress_url, webhook_secret=SECRET) as emu:
        await emu.admin.create_repo(repo)
        number = await emu.admin.create_issue(repo, "Bug", body="It breaks", author="alice")
        opened = (await emu.admin.deliveries())[-1]
        label = (await emu.admin.add_label(repo, number, "agent", user="alice")).deliveries[0]
        chat = (await emu.admin.comment(repo, number, "thanks!", user="bob")).deliveries[0]
        approve = (await emu.admin.comment(repo, number, "/approve", user="alice")).deliveries[0]
        pr = await emu.admin.open_pull(
            repo, head=f"agent/issue-{number}", title="Fix", body=f"Closes #{number}", user="bot"
        )
        merged = (await emu.admin.merge_pull(repo, pr.id, user="alice")).deliveries
        redelivered = await emu.admin.redeliver(label.id, concurrent=5)
        signatures = [
            await emu.admin.send_webhook("issues", {"action": "labeled"}, signature=mode)
            for mode in ("sha1_only", "invalid", "none")
        ]

    assert (opened.event, opened.status_code) == ("issues", 200)  # issues.opened: ignored
    assert label.status_code == approve.status_code == 202
    assert chat.status_code == 200
    assert [(d.event, d.status_code) for d in merged] == [("pull_request", 202), ("issues", 200)]
    assert [d.status_code for d in redelivered] == [200] * 5
    assert [d.status_code for d in signatures] == [401, 401, 401]
    assert [call[0] for call in dispatched.calls] == [label.id, approve.id, merged[0].id]

    intents = []
    for delivery, hook in dispatched.calls:
        row = await store.deliveries.to_route(delivery, hook)
        assert row is not None
        assert row.parsed is not None
        event = row.parsed
        assert (event.delivery_id, event.repo, event.issue_number) == (delivery, repo, number)
        intents.append(event.intent)
    assert intents == [Intent.START_PLAN, Intent.APPROVE, Intent.MERGED]
