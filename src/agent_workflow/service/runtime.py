"""Build a running system from `Settings`: store, forge, agent, core, queue, sweeper."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from agent_workflow.agents.factory import phase_limits
from agent_workflow.agents.sandbox import parse_domains
from agent_workflow.config import Settings, redacted_url
from agent_workflow.core import clock
from agent_workflow.core.errors import ConfigError, ForgeError, UncertainOutcome
from agent_workflow.core.limits import AgentLimits
from agent_workflow.core.ports import Agent, Forge, PushTokens
from agent_workflow.core.rounds import RoundLimits
from agent_workflow.core.runner import RunnerSettings
from agent_workflow.core.wiring import Core, build_core
from agent_workflow.forge.repo_config import ForgeRepoConfigs
from agent_workflow.ingress.events import Triggers
from agent_workflow.ingress.repo_triggers import RepoTriggers
from agent_workflow.queue.protocol import JobQueue
from agent_workflow.service.handler import JobHandler
from agent_workflow.service.janitor import WorktreeJanitor
from agent_workflow.service.sweeper import Sweeper
from agent_workflow.store import Store, connect
from agent_workflow.telemetry.recorder import PrometheusTelemetry
from agent_workflow.workspace.workspace import Workspace


@dataclass
class Runtime:
    """Everything a process needs, opened together and closed together."""

    settings: Settings
    triggers: Triggers  # what the ingress parses with (and the handler, for old rows)
    store: Store
    forge: Forge
    agent: Agent
    core: Core
    handler: JobHandler
    queue: JobQueue
    sweeper: Sweeper
    repo_configs: ForgeRepoConfigs  # the ingress drops an entry when a push changes the file
    own_login: str  # who we act as on GitHub: what our own effects cause is not kept


def triggers_from(settings: Settings) -> Triggers:
    """The one `Triggers` value of this process, from `AW_PLAN_LABEL` and its siblings."""
    return Triggers(
        plan_label=settings.plan_label,
        approve_label=settings.approve_label,
        plan_command=settings.plan_command,
        approve_command=settings.approve_command,
        retry_command=settings.retry_command,
        revise_command=settings.revise_command,
        repair_command=settings.repair_command,
    )


async def open_agent(
    settings: Settings, store: Store, forge: Forge, stack: AsyncExitStack
) -> Agent:
    """The agent named by `AW_AGENT`; the Claude agent's model proxy runs until `stack` closes
    (it meters into `store`). Pushes get their token from `forge` when it can narrow one."""
    push_tokens = forge if isinstance(forge, PushTokens) else None
    match settings.agent:
        case "scripted":
            from agent_workflow.testing.agent import ScriptedAgent

            return ScriptedAgent(
                duration_s=settings.scripted_duration_s,
                jitter_s=settings.scripted_jitter_s,
                seed=settings.scripted_seed,
            )
        case "claude":
            from agent_workflow.agents.factory import claude_agent, model_proxy

            proxy = await stack.enter_async_context(model_proxy(settings, store.usage))
            return claude_agent(settings, proxy, push_tokens, store.sessions)
        case "command":
            from agent_workflow.agents.factory import command_agent

            return command_agent(settings, push_tokens)
        case other:  # pragma: no cover - Settings validates the literal
            raise ConfigError(f"unknown agent {other!r}")


@asynccontextmanager
async def open_runtime(
    settings: Settings, *, forge: Forge | None = None, agent: Agent | None = None
) -> AsyncIterator[Runtime]:
    """Open the store, forge and queue (BullMQ when `AW_REDIS_URL` is set, else embedded)."""
    if settings.redis_url is not None:
        await _check_redis(settings.redis_url)  # before any state changes
    marker_key = settings.marker_key()  # before any state changes, like the Redis check
    async with AsyncExitStack() as stack:
        store = await connect(settings.database_url)
        stack.push_async_callback(store.close)
        if forge is None:
            from agent_workflow.forge.factory import github_forge

            hint = store.tasks.installation_of
            forge = await stack.enter_async_context(github_forge(settings, hint=hint))
        agent = agent or await open_agent(settings, store, forge, stack)
        own_login = await own_identity(settings, forge)
        repo_configs = ForgeRepoConfigs(forge, clock=clock.now)
        core = build_core(
            store,
            forge,
            agent,
            RunnerSettings(
                owner=settings.owner,
                lease_s=settings.lease_s,
                heartbeat_s=settings.heartbeat_s,
                max_failures=settings.max_failures,
                task_budget_usd=settings.task_budget_usd,
                progress_interval_s=settings.progress_interval_s or None,
                pr_draft=settings.pr_draft,
                limits=agent_limits(settings),
                phase_limits=phase_limits(settings),
                allowed_domains=parse_domains(settings.agent_allowed_domains),
            ),
            clock=clock.now,
            own_login=own_login,
            marker_secret=marker_key,
            uncertain_backoff_s=settings.uncertain_backoff_s,
            permission_ttl_s=settings.permission_ttl_s,
            round_limits=RoundLimits(
                revise=settings.max_revise_rounds, repair=settings.max_repair_rounds
            ),
            repo_configs=repo_configs,
            telemetry=PrometheusTelemetry(),
        )
        triggers = triggers_from(settings)
        handler = JobHandler(
            store,
            core.router,
            clock.now,
            triggers=RepoTriggers(triggers, repo_configs),
            max_route_attempts=settings.max_route_attempts,
        )
        queue = await _open_queue(settings, handler)
        stack.push_async_callback(queue.close)
        sweeper = Sweeper(
            store,
            queue,
            clock.now,
            grace_s=settings.sweep_grace_s,
            interval_s=settings.sweep_interval_s,
            retention_s=settings.delivery_retention_days * 86_400,
            tidy_interval_s=settings.retention_interval_s,
            janitor=WorktreeJanitor(
                store,
                Workspace(settings.workspace_dir.expanduser().resolve()),
                clock.now,
                max_age_s=settings.worktree_max_age_days * 86_400,
            ),
            daily_budget_usd=settings.daily_budget_usd,
            session_retention_s=settings.session_retention_days * 86_400,
        )
        yield Runtime(
            settings,
            triggers,
            store,
            forge,
            agent,
            core,
            handler,
            queue,
            sweeper,
            repo_configs,
            own_login,
        )


def agent_limits(settings: Settings) -> AgentLimits:
    """`AW_MAX_AGENTS`, `AW_MAX_AGENTS_PER_REPO` and `AW_DAILY_BUDGET_USD` for the core."""
    return AgentLimits(
        max_agents=settings.max_agents,
        max_agents_per_repo=settings.max_agents_per_repo,
        daily_budget_usd=settings.daily_budget_usd,
    )


async def own_identity(settings: Settings, forge: Forge) -> str:
    """`AW_BOT_LOGIN`, else the login our credentials act as (`GET /user`; `GET /app` for
    an App). Without it the ledger could not tell our comments from anyone's: refuse to start."""
    if settings.bot_login:
        return settings.bot_login
    try:
        return await forge.whoami()
    except (ForgeError, UncertainOutcome) as exc:
        raise ConfigError(
            f"cannot learn our GitHub identity ({exc}); set AW_BOT_LOGIN to our login"
        ) from exc


async def _open_queue(settings: Settings, handler: JobHandler) -> JobQueue:
    if settings.redis_url is None:
        from agent_workflow.queue.embedded import EmbeddedQueue

        return EmbeddedQueue(
            handler, concurrency=settings.concurrency, close_timeout=settings.shutdown_grace_s
        )
    from agent_workflow.queue.bullmq_backend import BullQueue

    return BullQueue(settings.redis_url, settings.queue_name, settings.queue_prefix)


async def _check_redis(url: str) -> None:
    """Fail fast with one line: BullMQ's client would otherwise retry for minutes."""
    import redis.asyncio as redis

    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        await client.ping()
    except (OSError, redis.RedisError) as exc:
        shown = redacted_url(url)
        raise ConfigError(f"cannot reach Redis at {shown}: {str(exc).replace(url, shown)}") from exc
    finally:
        await client.aclose()
