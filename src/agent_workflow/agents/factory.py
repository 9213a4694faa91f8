"""Build the configured agent (`AW_AGENT`) from settings.

The agents built here get no process-local `RunLimiter`: `AW_MAX_AGENTS` and
`AW_MAX_AGENTS_PER_REPO` are enforced deployment-wide by the core's runner, which
runs every agent inside a slot leased in the database (`core.limits`). The limiter
remains only for an agent driven without a runner and its store (`run_phase` callers
that pass one)."""

from __future__ import annotations

from claude_agent_sdk.types import SessionStore
from pydantic import SecretStr

from agent_workflow.agents import agent_env, sandbox
from agent_workflow.agents.claude import DEFAULT_LIMITS, ClaudeAgent, ClaudeConfig, PhaseLimits
from agent_workflow.agents.command import CommandAgent, CommandConfig
from agent_workflow.agents.model_proxy import ModelCredential, ModelProxy
from agent_workflow.config import Settings
from agent_workflow.core.errors import ConfigError
from agent_workflow.core.model import Phase
from agent_workflow.core.ports import PushTokens, UsageMeter
from agent_workflow.workspace.workspace import FixedPushToken, Workspace


def _workspace(settings: Settings, push_tokens: PushTokens | None) -> Workspace:
    if push_tokens is None and settings.github_token is not None:
        push_tokens = FixedPushToken(settings.github_token.get_secret_value())
    return Workspace(
        settings.workspace_dir.expanduser().resolve(),
        allow_workflow_changes=settings.allow_workflow_changes,
        # Global git config (credential helpers) is ignored: the push gets the token.
        push_tokens=push_tokens,
    )


def model_proxy(settings: Settings, meter: UsageMeter) -> ModelProxy:
    """The proxy the Claude agent reaches the model through (not started: `async with` it)."""
    if settings.model_api_key is None and settings.model_auth_token is None:
        raise ConfigError(
            "AW_AGENT=claude needs the model's credential: ANTHROPIC_API_KEY (or"
            " AW_MODEL_API_KEY, or ANTHROPIC_AUTH_TOKEN); the worker's proxy adds it"
        )
    return ModelProxy(
        upstream_url=settings.model_base_url,
        credential=ModelCredential(
            api_key=_secret(settings.model_api_key), auth_token=_secret(settings.model_auth_token)
        ),
        meter=meter,
        task_budget_usd=settings.task_budget_usd,
    )


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def phase_limits(settings: Settings) -> dict[Phase, PhaseLimits]:
    """The deployment's limits per phase run: `AW_MAX_TURNS`/`AW_MAX_BUDGET_USD` when set,
    else the agent's per-phase defaults. A repository's settings may only lower them."""
    return {
        phase: PhaseLimits(
            max_turns=settings.max_turns if settings.max_turns is not None else d.max_turns,
            max_budget_usd=(
                settings.max_budget_usd if settings.max_budget_usd is not None else d.max_budget_usd
            ),
        )
        for phase, d in DEFAULT_LIMITS.items()
    }


def claude_agent(
    settings: Settings,
    proxy: ModelProxy | None,
    push_tokens: PushTokens | None = None,
    sessions: SessionStore | None = None,
) -> ClaudeAgent:
    """Claude Code through claude-agent-sdk; `AW_MAX_TURNS`/`AW_MAX_BUDGET_USD` override per
    phase. `proxy` is how the CLI reaches the model (None only in tests that set the env);
    `push_tokens` gives each push its credential (None: `AW_GITHUB_TOKEN`, if set);
    `sessions` mirrors transcripts (used unless `AW_AGENT_SESSION_STORE=off`)."""
    limits = phase_limits(settings)
    workspace = _workspace(settings, push_tokens)
    config = ClaudeConfig(
        limits=limits,
        model=settings.claude_model,
        env_allow=_env_allow(settings),
        sandbox=settings.agent_sandbox == "on",
        allowed_domains=sandbox.parse_domains(settings.agent_allowed_domains),
        checkpoints=settings.agent_checkpoints == "on",
    )
    mirror = sessions if settings.agent_session_store == "on" else None
    return ClaudeAgent(workspace, config, None, proxy, mirror)


def command_agent(settings: Settings, push_tokens: PushTokens | None = None) -> CommandAgent:
    """Any coding CLI: `AW_AGENT_COMMAND` gets the prompt on stdin (or `{prompt}`)."""
    if not settings.agent_command:
        raise ConfigError("AW_AGENT=command needs AW_AGENT_COMMAND (the command line to run)")
    if sandbox.parse_domains(settings.agent_allowed_domains):
        # The command's sandbox has no network at all: no proxy filters its domains.
        raise ConfigError(
            "AW_AGENT_ALLOWED_DOMAINS is only supported for the Claude agent"
            " (AW_AGENT=command runs without any network)"
        )
    workspace = _workspace(settings, push_tokens)
    config = CommandConfig(
        command=settings.agent_command,
        env_allow=_env_allow(settings),
        sandbox=settings.agent_sandbox == "on",
    )
    return CommandAgent(workspace, config)


def _env_allow(settings: Settings) -> tuple[str, ...]:
    """`AW_AGENT_ENV_ALLOW` as names; a forbidden one (AW_*, GITHUB_TOKEN...) is a ConfigError."""
    try:
        return agent_env.parse_allow(settings.agent_env_allow)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
