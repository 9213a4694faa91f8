"""Fixtures: the ingress app over a real store (SQLite and PostgreSQL), in-process or on uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from agent_workflow.ingress import create_app
from agent_workflow.store import Store
from github_emulator import serve_app
from tests.conftest import FakeClock
from tests.ingress.helpers import SECRET, TRIGGERS, Dispatched

# Small, so oversize tests send little; real deployments keep AW_WEBHOOK_MAX_BODY_BYTES.
TEST_MAX_BODY = 64 * 1024


@pytest.fixture
def dispatched() -> Dispatched:
    """The recording `on_accepted`."""
    return Dispatched()


@pytest.fixture
def app(store: Store, dispatched: Dispatched, clock: FakeClock) -> Starlette:
    """The ingress app with a test secret, a small body cap and a short dispatch timeout."""
    return create_app(
        store,
        dispatched,
        secret=SECRET,
        max_body_bytes=TEST_MAX_BODY,
        triggers=TRIGGERS,
        clock=clock,
        dispatch_timeout_s=0.5,
        body_timeout_s=10.0,
    )


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process (ASGI)."""
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as c:
        yield c


@pytest.fixture
async def served(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app through a real uvicorn server on 127.0.0.1."""
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as c:
        yield c
