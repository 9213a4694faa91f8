"""Git workspaces for agent runs: cached clones, per-task worktrees, commits, pushes, limits."""

from agent_workflow.workspace.git import Git, GitError
from agent_workflow.workspace.limiter import RunLimiter
from agent_workflow.workspace.workspace import GitAuthor, Workspace, Worktree

__all__ = ["Git", "GitAuthor", "GitError", "RunLimiter", "Workspace", "Worktree"]
