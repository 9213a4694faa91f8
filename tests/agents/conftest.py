"""Fixtures for agent tests: the fake Messages API, a bare remote, a workspace, requests.

The real Claude Code CLI (bundled with claude-agent-sdk) runs against the fake;
each test gets its own CLAUDE_CONFIG_DIR, so transcripts never meet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agent_workflow.agents.claude import ClaudeAgent, ClaudeConfig, PhaseLimits
from agent_workflow.core.model import Phase
from agent_workflow.core.ports import AgentRequest
from agent_workflow.workspace import Workspace
from tests.support.fake_anthropic import FakeAnthropic, Script
from tests.support.git_seed import make_remote

REPO = "acme/widgets"
SESSION = "0b5cf3a4-4f6e-5d8b-9a1c-2e3f4a5b6c7d"
FILES = {
    "README.md": "# widgets\n\nA small library of widgets.\n",
    "widgets/__init__.py": "def area(w, h):\n    return w * h\n",
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    """A started fake API answering with an empty script (tests assign `fake.script`)."""
    async with FakeAnthropic(Script()) as server:
        yield server


@pytest.fixture
def claude_env(fake: FakeAnthropic, tmp_path: Path) -> dict[str, str]:
    """The CLI environment pointing at the fake, with a config dir of this test's own."""
    return fake.cli_env(tmp_path / "claude-config")


@pytest.fixture
async def remote(tmp_path: Path) -> str:
    """A bare repository with a small Python project on `main`."""
    return await make_remote(tmp_path / "remote.git", FILES)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """A workspace rooted in this test's temporary directory."""
    return Workspace(tmp_path / "ws")


@pytest.fixture
def make_agent(workspace: Workspace, claude_env: dict[str, str]) -> Callable[..., ClaudeAgent]:
    """Build a ClaudeAgent on the fake; keyword arguments override `ClaudeConfig` fields."""

    def build(**overrides: Any) -> ClaudeAgent:
        config = dataclasses.replace(ClaudeConfig(env=claude_env), **overrides)
        return ClaudeAgent(workspace, config)

    return build


@pytest.fixture
def make_request(remote: str) -> Callable[..., AgentRequest]:
    """Build an AgentRequest for issue 7 of acme/widgets on the test remote."""

    def build(phase: Phase = Phase.PLAN, **overrides: Any) -> AgentRequest:
        base = AgentRequest(
            task_id=1,
            repo=REPO,
            issue_number=7,
            phase=phase,
            attempt=1,
            session_id=SESSION,
            resume=False,
            title="Add a perimeter function",
            body="We need `perimeter(w, h)` next to `area`.",
            clone_url=remote,
            default_branch="main",
            branch="agent/issue-7",
            plan="1. Add perimeter() in widgets/__init__.py.\n2. Test it.",
        )
        return dataclasses.replace(base, **overrides)

    return build


def limits(
    max_turns: int | None = 20, max_budget_usd: float | None = 5.0
) -> dict[Phase, PhaseLimits]:
    """The same limits for every phase."""
    return {phase: PhaseLimits(max_turns, max_budget_usd) for phase in Phase}
