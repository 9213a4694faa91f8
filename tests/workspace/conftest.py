"""Fixtures for workspace tests: a bare remote and a workspace in the test's tmp dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_workflow.workspace import Workspace
from tests.support.git_seed import make_remote

REPO = "acme/widgets"


@pytest.fixture
async def remote(tmp_path: Path) -> str:
    """A bare repository with one commit on `main`."""
    return await make_remote(tmp_path / "remote.git", {"README.md": "hello\n"})


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """A workspace rooted in this test's temporary directory."""
    return Workspace(tmp_path / "ws")
