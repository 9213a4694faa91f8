"""Fixtures for the forge tests: a real emulator on loopback, an adapter, a webhook receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from agent_workflow.forge.github import GitHubForge
from agent_workflow.forge.policy import RequestPolicy
from github_emulator import EmulatorServer, serve_app
from tests.forge.helpers import REPO, SECRET, TOKEN, Receiver


@pytest.fixture
async def emu() -> AsyncIterator[EmulatorServer]:
    """An emulator with repository `octo/demo` (owner `octo`); webhooks off."""
    async with EmulatorServer(token=TOKEN) as server:
        await server.admin.create_repo(REPO)
        yield server


@pytest.fixture
async def forge(emu: EmulatorServer) -> AsyncIterator[GitHubForge]:
    """The adapter against the emulator with test-sized waits."""
    async with GitHubForge.from_token(TOKEN, base_url=emu.url, policy=RequestPolicy.fast()) as f:
        yield f


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A live webhook receiver on loopback."""
    recv = Receiver()
    app = Starlette(routes=[Route("/hook", recv.handle, methods=["POST"])])
    async with serve_app(app) as url:
        recv.url = f"{url}/hook"
        yield recv


@pytest.fixture
async def hooked(receiver: Receiver) -> AsyncIterator[EmulatorServer]:
    """An emulator that sends webhooks to `receiver`, with `octo/demo`."""
    async with EmulatorServer(
        token=TOKEN, webhook_url=receiver.url, webhook_secret=SECRET
    ) as server:
        await server.admin.create_repo(REPO)
        yield server
