"""What the compound phase leaves in the repository: a solution note and a CLAUDE.md pointer.

The agent is asked to write both; these helpers make sure they exist
whatever it did, so the compound branch always carries the lesson.

The worktree is the agent's: any path in it may be a symlink it planted. These
writes land only inside the worktree (`UnsafePath` otherwise).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from agent_workflow.core.ports import AgentRequest

SOLUTIONS_DIR = "docs/solutions"
CLAUDE_MD = "CLAUDE.md"
COMPOUND_BRANCH_SUFFIX = "-compound"

# Appended to CLAUDE.md when it does not mention docs/solutions/ yet.
POINTER = (
    "\n## Lessons from past issues\n\n"
    "Notes on past issues (the problem, the merged solution, what was hard) are in\n"
    "`docs/solutions/`. Read the ones that touch the code you change.\n"
)

_SLUG_MAX = 48


class UnsafePath(ValueError):
    """A path the compound phase would write leads out of the worktree (through a symlink)."""


def _inside(root: Path, rel_path: str) -> Path:
    """`root / rel_path` with every symlink resolved; `UnsafePath` when it is not under `root`."""
    base = root.resolve()
    target = (base / rel_path).resolve()
    if base not in target.parents:
        raise UnsafePath(f"{rel_path} leads out of the worktree")
    return target


def _write(root: Path, rel_path: str, text: str) -> None:
    """Write `text` to `rel_path` under `root`, never through a symlink out of it."""
    target = _inside(root, rel_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target = _inside(root, rel_path)  # a directory made above is still inside
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def compound_branch(request: AgentRequest) -> str:
    """The branch the compound phase commits to, e.g. `agent/issue-7-compound`."""
    return f"{request.branch}{COMPOUND_BRANCH_SUFFIX}"


def solution_slug(issue_number: int, title: str) -> str:
    """`issue-<N>-<title in lower-case words joined by dashes>`, bounded in length."""
    words = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    words = words[:_SLUG_MAX].rstrip("-")
    return f"issue-{issue_number}-{words}" if words else f"issue-{issue_number}"


def solution_path(request: AgentRequest) -> str:
    """Where the lesson of `request`'s issue is written, relative to the repository root."""
    return f"{SOLUTIONS_DIR}/{solution_slug(request.issue_number, request.title)}.md"


def write_fallback_solution(root: Path, rel_path: str, request: AgentRequest, summary: str) -> None:
    """Write the solution note from the agent's final summary (when it wrote none itself)."""
    text = (
        f"# #{request.issue_number}: {request.title}\n\n"
        f"{summary.strip() or 'The pull request for this issue was merged.'}\n"
    )
    if request.plan.strip():
        text += f"\n## The plan that was followed\n\n{request.plan.strip()}\n"
    _write(root, rel_path, text)


def ensure_pointer(root: Path) -> bool:
    """Make CLAUDE.md mention `docs/solutions/` (creating the file if needed); True if changed."""
    target = _inside(root, CLAUDE_MD)
    current = target.read_text(encoding="utf-8") if target.is_file() else ""
    if f"{SOLUTIONS_DIR}/" in current:
        return False
    if current and not current.endswith("\n"):
        current += "\n"
    _write(root, CLAUDE_MD, current + POINTER if current else POINTER.lstrip("\n"))
    return True
