"""The tool guard, decided without a CLI: what each phase may touch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent_workflow.agents.claude_tools import decide, policy_for

READ_ONLY = policy_for(read_only=True, allow_shell=True)
EDITING = policy_for(read_only=False, allow_shell=True)
NO_SHELL = policy_for(read_only=False, allow_shell=False)


def decision(result: Any) -> str:
    """ "deny", "allow" or "" (no opinion) from a hook answer."""
    return str(result.get("hookSpecificOutput", {}).get("permissionDecision", ""))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A checkout with a symlink pointing out of it."""
    checkout = tmp_path / "checkout"
    (checkout / "src").mkdir(parents=True)
    (checkout / "escape").symlink_to(tmp_path)
    return checkout.resolve()


@pytest.mark.parametrize(
    ("tool", "tool_input", "expected"),
    [
        ("Read", {"file_path": "src/a.py"}, ""),
        ("Write", {"file_path": "src/a.py"}, ""),
        ("Edit", {"file_path": "/etc/passwd"}, "deny"),
        ("Write", {"file_path": "escape/x.txt"}, "deny"),  # through a symlink
        ("Write", {"file_path": "../x.txt"}, "deny"),
        ("Write", {"file_path": ".git/config"}, "deny"),
        ("Read", {"file_path": "~/.ssh/id_rsa"}, "deny"),
        ("Glob", {"pattern": "/etc/**/*.conf"}, "deny"),
        ("Glob", {"pattern": "**/*.py"}, ""),
        ("Grep", {"pattern": "/etc/passwd", "path": "src"}, ""),  # a regex, not a path
        ("Grep", {"pattern": "x", "path": "/"}, "deny"),
        ("Bash", {"command": "pytest"}, "allow"),
        ("WebFetch", {"url": "https://example.com"}, "deny"),
        ("Agent", {"prompt": "help"}, "deny"),
    ],
)
def test_guard__editing_phase(
    root: Path, tool: str, tool_input: dict[str, Any], expected: str
) -> None:
    assert decision(decide(EDITING, root, tool, tool_input)) == expected


@pytest.mark.parametrize(
    ("tool", "tool_input", "expected"),
    [
        ("Read", {"file_path": "src/a.py"}, ""),
        ("Write", {"file_path": "src/a.py"}, "deny"),
        ("Edit", {"file_path": "src/a.py"}, "deny"),
        ("Bash", {"command": "ls"}, "deny"),
        ("Read", {"file_path": "/etc/hostname"}, "deny"),
    ],
)
def test_guard__read_only_phase(
    root: Path, tool: str, tool_input: dict[str, Any], expected: str
) -> None:
    assert decision(decide(READ_ONLY, root, tool, tool_input)) == expected


def test_guard__shell_can_be_switched_off(root: Path) -> None:
    assert "Bash" not in NO_SHELL.tools
    assert decision(decide(NO_SHELL, root, "Bash", {"command": "ls"})) == "deny"
    assert READ_ONLY.permission_mode == "dontAsk"
    assert EDITING.permission_mode == "acceptEdits"
