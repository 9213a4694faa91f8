"""Which tools Claude gets per phase, and the guard that keeps it inside its checkout.

Two layers, so neither a CLI default nor a repository's own settings can widen them:

1. CLI options. plan: only the read tools, permission mode `dontAsk` (anything
   not pre-approved is refused; reads inside the working directory are allowed
   by default, reads outside it are refused). deliver/compound: a fixed set of
   editing tools, permission mode `acceptEdits` (edits inside the working
   directory are accepted, anything that would prompt is refused: there is no
   one to ask).
2. A `PreToolUse` hook that sees every tool call: it refuses tools outside the
   phase's set, any path outside the checkout (symlinks resolved) or into its
   `.git`, and every edit in a read-only phase; it approves `Bash` in the
   editing phases when allowed, never with `dangerouslyDisableSandbox`.

Shell commands are confined by the CLI's sandbox, not by this hook (which cannot
see what a command touches): `sandbox.claude_settings` (bubblewrap; writes only in
the checkout, no network but the allowed domains, the worker's home and working
directory unreadable, no unsandboxed escape). `ClaudeAgent` refuses to run an
editing phase without a working sandbox unless it was turned off explicitly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claude_agent_sdk import HookContext, HookInput, HookJSONOutput, HookMatcher
from claude_agent_sdk.types import HookEvent, PermissionMode

READ_TOOLS: tuple[str, ...] = ("Read", "Grep", "Glob")
EDIT_TOOLS: tuple[str, ...] = ("Write", "Edit", "NotebookEdit")
SHELL_TOOL = "Bash"
# The agent's own checklist: it only keeps a list in the CLI's state, and that list is
# what the live progress comment shows (`claude_progress`). Every phase may use it.
TODO_TOOL = "TodoWrite"

# The Bash input asking to run the command outside the sandbox: always refused.
UNSANDBOXED_KEY = "dangerouslyDisableSandbox"

# Tool input keys holding a file or directory the tool touches.
_PATH_KEYS = ("file_path", "notebook_path", "path")


@dataclass(frozen=True)
class ToolPolicy:
    """The tools of one phase and how their calls are decided."""

    tools: tuple[str, ...]
    permission_mode: PermissionMode
    read_only: bool
    allow_shell: bool


def policy_for(read_only: bool, allow_shell: bool) -> ToolPolicy:
    """The policy for a read-only phase (plan) or an editing one (deliver, compound)."""
    if read_only:
        return ToolPolicy((*READ_TOOLS, TODO_TOOL), "dontAsk", read_only=True, allow_shell=False)
    tools = READ_TOOLS + (TODO_TOOL,) + EDIT_TOOLS + ((SHELL_TOOL,) if allow_shell else ())
    return ToolPolicy(tools, "acceptEdits", read_only=False, allow_shell=allow_shell)


def _deny(reason: str) -> HookJSONOutput:
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": reason,
        }
    }


def _allow(reason: str) -> HookJSONOutput:
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "allow",
            "permissionDecisionReason": reason,
        }
    }


def _outside(root: Path, value: str) -> str | None:
    """Why `value` (a path a tool would touch) is off limits, or None when it is fine."""
    path = Path(os.path.expanduser(value))
    resolved = Path(os.path.realpath(path if path.is_absolute() else root / path))
    if not resolved.is_relative_to(root):
        return f"{value} is outside the checkout {root}"
    if ".git" in resolved.relative_to(root).parts:
        return f"{value} is inside git's own data"
    return None


def decide(
    policy: ToolPolicy, root: Path, tool: str, tool_input: Mapping[str, Any]
) -> HookJSONOutput:
    """The hook's decision for one tool call (`{}`: no opinion, the CLI's rules apply)."""
    if tool not in policy.tools:
        return _deny(f"{tool} is not available in this phase")
    if tool == SHELL_TOOL:
        if not policy.allow_shell:
            return _deny("no shell")
        if tool_input.get(UNSANDBOXED_KEY):
            return _deny("commands run in the sandbox; there is no way out of it")
        return _allow("shell commands are allowed (sandboxed)")
    if policy.read_only and tool in EDIT_TOOLS:
        return _deny("this phase is read-only")
    for value in _paths(tool, tool_input):
        problem = _outside(root, value)
        if problem:
            return _deny(problem)
    return {}


def _paths(tool: str, tool_input: Mapping[str, Any]) -> list[str]:
    """The paths a tool call names (for Glob, also the fixed prefix of an absolute pattern)."""
    paths = [v for k in _PATH_KEYS if isinstance(v := tool_input.get(k), str) and v]
    pattern = tool_input.get("pattern")
    if tool == "Glob" and isinstance(pattern, str) and pattern.startswith(("/", "~")):
        fixed = re.split(r"[*?\[{]", pattern, maxsplit=1)[0]
        paths.append(fixed.rsplit("/", 1)[0] or "/")
    return paths


def guard_hooks(policy: ToolPolicy, cwd: Path) -> dict[HookEvent, list[HookMatcher]]:
    """The `hooks` option enforcing `policy` inside `cwd`."""
    root = Path(os.path.realpath(cwd))

    async def guard(
        data: HookInput, tool_use_id: str | None, context: HookContext
    ) -> HookJSONOutput:
        if data["hook_event_name"] != "PreToolUse":
            return {}
        return decide(policy, root, data["tool_name"], data["tool_input"])

    return {"PreToolUse": [HookMatcher(matcher=None, hooks=[guard], on_failure="block")]}
