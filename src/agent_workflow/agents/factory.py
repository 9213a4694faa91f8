"""Build the configured agent (`AW_AGENT`) from settings."""

from __future__ import annotations

from agent_workflow.agents.claude import DEFAULT_LIMITS, ClaudeAgent, ClaudeConfig, PhaseLimits
from agent_workflow.agents.command import CommandAgent, CommandConfig
from agent_workflow.config import Settings
from agent_workflow.core.errors import ConfigError
from agent_workflow.workspace.limiter import RunLimiter
from agent_workflow.workspace.workspace import Workspace


def _workspace(settings: Settings) -> tuple[Workspace, RunLimiter]:
    return (
        Workspace(settings.workspace_dir.expanduser().resolve()),
        RunLimiter(max_runs=settings.max_agents, max_runs_per_repo=settings.max_agents_per_repo),
    )


def claude_agent(settings: Settings) -> ClaudeAgent:
    """Claude Code through claude-agent-sdk; `AW_MAX_TURNS`/`AW_MAX_BUDGET_USD` override per phase."""
    limits = {
        phase: PhaseLimits(
            max_turns=settings.max_turns if settings.max_turns is not None else d.max_turns,
            max_budget_usd=(
                settings.max_budget_usd if settings.max_budget_usd is not None else d.max_budget_usd
            ),
        )
        for phase, d in DEFAULT_LIMITS.items()
    }
    workspace, limiter = _workspace(settings)
    return ClaudeAgent(workspace, ClaudeConfig(limits=limits, model=settings.claude_model), limiter)


def command_agent(settings: Settings) -> CommandAgent:
    """Any coding CLI: `AW_AGENT_COMMAND` gets the prompt on stdin (or `{prompt}`)."""
    if not settings.agent_command:
        raise ConfigError("AW_AGENT=command needs AW_AGENT_COMMAND (the command line to run)")
    workspace, limiter = _workspace(settings)
    return CommandAgent(workspace, CommandConfig(command=settings.agent_command), limiter)
