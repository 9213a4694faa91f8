"""Fixtures for "the real agent": the real Claude Code CLI against the scripted fake
Messages API, a local bare git repository as the remote, the GitHub emulator as
GitHub, and the core (router, runner, hooks, ledger) doing everything else.

The `store`/`db_url` fixtures (SQLite and PostgreSQL) come from `tests/conftest.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent_workflow.forge.github import GitHubForge
from github_emulator import EmulatorServer
from tests.e2e_claude.helpers import FILES, REPO, TOKEN, TRUSTED, World, github_forge
from tests.support.fake_anthropic import FakeAnthropic, Script
from tests.support.git_seed import make_remote


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    """The fake Messages API in the test's loop; tests assign `fake.script`."""
    async with FakeAnthropic(Script()) as server:
        yield server


@pytest.fixture
async def remote(tmp_path: Path) -> str:
    """A bare repository (the "GitHub" git remote) with a small project on `main`."""
    return await make_remote(tmp_path / "remote.git", FILES)


@pytest.fixture
async def emu(remote: str) -> AsyncIterator[EmulatorServer]:
    """The GitHub emulator with the repository and a trusted (write) user; no webhooks."""
    async with EmulatorServer(token=TOKEN) as server:
        await server.admin.create_repo(REPO, clone_url=remote)
        await server.admin.set_permission(REPO, TRUSTED, "write")
        yield server


@pytest.fixture
async def forge(emu: EmulatorServer) -> AsyncIterator[GitHubForge]:
    """The real REST adapter pointed at the emulator."""
    async with github_forge(emu.url) as adapter:
        yield adapter


@pytest.fixture
async def world(
    tmp_path: Path, fake: FakeAnthropic, remote: str, emu: EmulatorServer, forge: GitHubForge
) -> World:
    """Everything a test drives, with one issue opened by the trusted user."""
    issue = await emu.admin.create_issue(
        REPO, "Add a perimeter function", body="We need `perimeter(w, h)`.", author=TRUSTED
    )
    return World(
        fake=fake,
        emu=emu,
        forge=forge,
        remote=remote,
        issue=issue,
        workspace_dir=tmp_path / "workspaces",
        claude_env=fake.cli_env(tmp_path / "claude-config"),
    )
