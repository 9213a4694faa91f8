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
from agent_workflow.ingress import create_app
from agent_workflow.store import Store
from github_emulator import EmulatorServer, serve_app
from tests.ingress.conftest import TEST_MAX_BODY
from tests.ingress.helpers import (
    SECRET,
    TRIGGERS,
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


async def test_unusable_delivery_id__400_over_the_wire(
    served: httpx.AsyncClient, store: Store, dispatched: Dispatched
) -> None:
    body = encode(labeled("agent"))
    answers = [
        await served.post(
            URL, content=body, headers=signed_headers(body, "issues", bad, hook_id=hook)
        )
        for bad, hook in (("a" * 195, "42"), ("abc/def", "42"), ("abc def", "42"), ("abc", "4x2"))
    ]

    assert [a.status_code for a in answers] == [400] * 4
    assert await store.deliveries.unrouted(float("inf")) == []
    assert dispatched.calls == []


# Short, so the tests wait little; `aw serve` uses AW_WEBHOOK_BODY_TIMEOUT_S (10 s).
BODY_TIMEOUT_S = 1.0


@pytest.fixture
async def impatient_url(store: Store, dispatched: Dispatched) -> AsyncIterator[str]:
    """The ingress on uvicorn with a 1 s body deadline; yields its base URL."""
    app = create_app(
        store,
        dispatched,
        secret=SECRET,
        max_body_bytes=TEST_MAX_BODY,
        triggers=TRIGGERS,
        body_timeout_s=BODY_TIMEOUT_S,
    )
    async with serve_app(app) as url:
        yield url


async def _slow_request(
    url: str, announced: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a connection, send a webhook's headers announcing `announced` bytes, then one byte."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        (
            f"POST {URL} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
            f"x-github-event: issues\r\nx-github-delivery: {delivery_id()}\r\n"
            f"content-length: {announced}\r\n\r\n{{"
        ).encode()
    )
    await writer.drain()
    return reader, writer


async def test_body_trickling_slower_than_the_deadline__connection_closed(
    impatient_url: str, store: Store
) -> None:
    """One byte every 0.2 s never completes the body within the deadline: 408, then EOF."""
    reader, writer = await _slow_request(impatient_url, 1_000)

    async def trickle() -> None:
        for _ in range(100):  # 20 s worth, far past the deadline
            await asyncio.sleep(0.2)
            writer.write(b" ")
            await writer.drain()

    trickling = asyncio.create_task(trickle())
    try:
        answer = await asyncio.wait_for(reader.read(), 15)  # to EOF: the server closed it
    finally:
        trickling.cancel()
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert await store.deliveries.unrouted(float("inf")) == []
