"""Build the configured agent (`AW_AGENT`) from settings."""

from __future__ import annotations

from agent_workflow.agents import agent_env
from agent_workflow.agents.claude import DEFAULT_LIMITS, ClaudeAgent, ClaudeConfig, PhaseLimits
from agent_workflow.agents.command import CommandAgent, CommandConfig
from agent_workflow.config import Settings
from agent_workflow.core.errors import ConfigError
from agent_workflow.workspace.limiter import RunLimiter
from agent_workflow.workspace.workspace import Workspace


def _workspace(settings: Settings) -> tuple[Workspace, RunLimiter]:
    return (
        Workspace(
            settings.workspace_dir.expanduser().resolve(),
            allow_workflow_changes=settings.allow_workflow_changes,
            # Global git config (credential helpers) is ignored: the push gets the token.
            push_token=settings.github_token.get_secret_value() if settings.github_token else None,
        ),
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
    config = ClaudeConfig(
        limits=limits, model=settings.claude_model, env_allow=_env_allow(settings)
    )
    return ClaudeAgent(workspace, config, limiter)


def command_agent(settings: Settings) -> CommandAgent:
    """Any coding CLI: `AW_AGENT_COMMAND` gets the prompt on stdin (or `{prompt}`)."""
    if not settings.agent_command:
        raise ConfigError("AW_AGENT=command needs AW_AGENT_COMMAND (the command line to run)")
    workspace, limiter = _workspace(settings)
    config = CommandConfig(command=settings.agent_command, env_allow=_env_allow(settings))
    return CommandAgent(workspace, config, limiter)


def _env_allow(settings: Settings) -> tuple[str, ...]:
    """`AW_AGENT_ENV_ALLOW` as names; a forbidden one (AW_*, GITHUB_TOKEN...) is a ConfigError."""
    try:
        return agent_env.parse_allow(settings.agent_env_allow)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
