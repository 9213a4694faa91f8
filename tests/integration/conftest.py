"""Fixtures: a GitHub emulator on loopback (webhooks off) and the real adapter pointed at it.

The `store` (SQLite and PostgreSQL) and `clock` fixtures come from `tests/conftest.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agent_workflow.forge.emulator import EmulatorServer
from agent_workflow.forge.github import GitHubForge
from tests.integration.helpers import TOKEN, github_forge, setup_world


@pytest.fixture
async def emu() -> AsyncIterator[EmulatorServer]:
    """An emulator with `octo/demo`, a trusted and an untrusted collaborator; no webhooks."""
    async with EmulatorServer(token=TOKEN) as server:
        await setup_world(server)
        yield server


@pytest.fixture
async def forge(emu: EmulatorServer) -> AsyncIterator[GitHubForge]:
    """`GitHubForge.from_token` against the emulator, with test-sized waits."""
    async with github_forge(emu) as adapter:
        yield adapter
