"""Configuration from the environment (`AW_*`), optionally added to by a TOML file.

The file is `agent-workflow.toml` in the working directory, or the path in
`AW_CONFIG_FILE`; the environment wins over the file.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from agent_workflow.core.errors import ConfigError
from agent_workflow.core.text import command_key, first_repeat, label_key

# A dashboard token shorter than this could be guessed by trying (the login is throttled,
# but the token is the only thing between the network and the dashboard).
MIN_DASHBOARD_TOKEN = 16


class Settings(BaseSettings):
    """Every knob, with the default a single machine wants and the reason for it.

    This is the only place a default lives: the layers below take these values as
    required parameters and carry no second default of their own.
    """

    model_config = SettingsConfigDict(env_prefix="AW_", extra="ignore", populate_by_name=True)

    # Storage and queue.
    # URLs may carry passwords: kept out of the settings' repr, shown only through
    # `redacted_url` (the password replaced by ***).
    database_url: str = Field(  # embedded: a file in the working dir
        default="sqlite:///agent-workflow.db", repr=False
    )
    redis_url: str | None = Field(default=None, repr=False)  # unset: the in-process queue
    queue_name: str = "agent-workflow"  # BullMQ queue; distinct names share one Redis
    queue_prefix: str = "aw"  # Redis key prefix; not BullMQ's `bull`, so a shared Redis reads well

    # GitHub.
    github_api_url: str = "https://api.github.com"  # GitHub Enterprise Server: its /api/v3
    github_token: SecretStr | None = None
    github_app_id: str | None = None
    github_app_private_key: SecretStr | None = None  # PEM text, or a path to the PEM file
    github_installation_id: int | None = None
    github_mutation_interval_s: float = 1.0  # GitHub asks for ≥1 s between mutations per token
    github_timeout_s: float = 30.0  # GitHub answers in well under a second; 30 s means stuck
    # A burst of events from one person (label, comments, /approve) costs one permission
    # read instead of one each (G6), while a revoked user can act for at most a minute.
    # The only cache of permissions: the core's `Trust` takes this value, nothing else has one.
    permission_ttl_s: float = 60.0
    # An uncertain mutation (5xx, timeout) is reconciled and retried after this many
    # seconds times the round number, so a struggling GitHub is not hammered.
    uncertain_backoff_s: float = 1.0
    bot_login: str = ""  # our own account; its events are ignored (any `[bot]` login is too)
    webhook_secret: SecretStr | None = None
    # GitHub caps webhook payloads at 25 MB, but the events we act on are a few KB;
    # 1 MiB leaves room for long issue bodies while bounding memory per request.
    webhook_max_body_bytes: int = 1_048_576

    # Effect markers and identity.
    # The ledger adopts only comments and PRs written by our own login, ending with a
    # marker signed (HMAC) under this secret. Unset: derived from AW_WEBHOOK_SECRET (a
    # secret every process of a deployment already shares), never no secret at all.
    # AW_BOT_LOGIN (above) overrides the login learned at start (GET /user, GET /app).
    marker_secret: SecretStr | None = None

    # Triggers (DESIGN §1): what people type on GitHub to drive the agent. Labels compare
    # case-insensitively, commands exactly (first line, whitespace squashed). The
    # defaults are the README's vocabulary; change them when `agent` is already taken.
    plan_label: str = "agent"  # added to an issue: plan it
    approve_label: str = "agent-approved"  # added after the plan: deliver it (as `/approve`)
    plan_command: str = "/agent plan"  # for people who would rather comment than label
    approve_command: str = "/approve"  # after the plan: deliver it
    retry_command: str = "/retry"  # after `agent-blocked`: a new attempt of the phase
    # On the task's pull request (conversation or review comment), a first line of this,
    # a space and an instruction starts a revise round; the agent's own name, like
    # `/agent plan`, so people learn one word.
    revise_command: str = "/agent"
    # On the task's pull request: a repair round for the head commit's failing checks,
    # even when a person pushed it (such pushes are otherwise left alone).
    repair_command: str = "/agent fix ci"

    # Hostile input.
    # GitHub gives up on a delivery after 10 s, so a body still arriving then is a slow
    # client holding a connection, not a webhook worth waiting for.
    webhook_body_timeout_s: float = 10.0
    # Connections (and requests) at once before uvicorn answers 503: a socket costs a file
    # descriptor, and this stays well under the usual 1024-per-process limit.
    max_connections: int = 500
    # A routing failure this many times is not transient: dead-letter it (shown by
    # `aw status`, never retried automatically) so it stops costing every sweep.
    max_route_attempts: int = 5

    # Retention.
    # Routed (and dead-lettered) deliveries older than this are deleted by the sweeper. GitHub
    # redelivers for 3 days at most, so dedupe by delivery id is safe long before; a month
    # keeps them for `aw status` and audits. A body replayed after this is no longer a
    # known duplicate (routing still decides from the task's state).
    delivery_retention_days: float = Field(default=30.0, gt=0)
    # A task's worktrees go once its phases are all final (complete, blocked, failed); one
    # untouched this long goes whatever the database says: no agent run lasts days (turn
    # and budget limits), so it is a stuck or unknown task's leftover holding disk.
    worktree_max_age_days: float = Field(default=7.0, gt=0)
    # Claude transcripts mirrored to the database (a takeover on another machine resumes
    # from them) are deleted once a session has been idle this long: only a phase still
    # running or retried needs one, and no run lasts days; a settled phase's transcript is
    # kept until then (deleting it at the settle would race a takeover of that same run).
    session_retention_days: float = Field(default=7.0, gt=0)
    # How often the sweeper deletes old deliveries and removes worktrees: both scan (a table,
    # a directory), so hourly keeps them cheap; growth between two runs is an hour's worth.
    retention_interval_s: float = Field(default=3600.0, gt=0)

    # Backfill: nothing missed while down. GitHub never retries a failed delivery, so on
    # start and this often the serve process reads GitHub's hook-deliveries log and ingests
    # what never reached the inbox. Five minutes: a delivery lost while up (a dropped
    # connection) waits at most that, and a pass with nothing missed costs one list read.
    # 0 turns backfill off.
    backfill_interval_s: float = Field(default=300.0, ge=0)
    # GitHub keeps hook deliveries for 3 days: an older one cannot be fetched anyway. Must
    # stay below AW_DELIVERY_RETENTION_DAYS, or a deleted row would be ingested again.
    backfill_max_age_s: float = Field(default=259_200.0, gt=0)
    # Payloads fetched per pass (one read each): after a long outage the log is caught up
    # over a few passes instead of a burst of reads against the rate limit.
    backfill_max_deliveries: int = Field(default=100, ge=1)
    # Repository webhooks whose logs backfill reads, `owner/repo:hook_id,…` (the hook id is
    # in the webhook's settings page and in X-GitHub-Hook-ID); empty: none. A GitHub App's
    # own webhook log is read whenever App credentials are set.
    github_hooks: str = ""
    # Reconciliation: open issues carrying the plan label with no task are routed as if
    # labelled (by the label's last actor, trust checked as for any event). It lists every
    # open labelled issue of every repository, so hourly, not at the backfill's pace. 0: off.
    reconcile_interval_s: float = Field(default=3600.0, ge=0)

    # Rounds after the pull request (review rounds, CI repair rounds).
    # Each round costs an agent run; past these, a person should look: the agent and its
    # reviewer (or CI) are not converging. One comment says so, nothing more runs.
    max_revise_rounds: int = Field(default=5, ge=1)
    max_repair_rounds: int = Field(default=3, ge=1)
    # A draft PR tells reviewers the agent may still change it and keeps CODEOWNERS from
    # being pinged; off by default because most teams review what the agent opens at once.
    pr_draft: bool = False

    # HTTP server.
    host: str = "127.0.0.1"  # loopback: expose it through a proxy, not by accident
    port: int = 8080
    # `aw worker`'s own /metrics listener (`aw serve` shows /metrics on AW_PORT). Unset: no
    # listener, since several workers on one host would collide on any one fixed port;
    # loopback, like AW_HOST, so metrics are exposed on purpose, not by accident.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    # The web dashboard at /dashboard: the bearer token (or login password) that opens it.
    # Unset: no dashboard at all (404), since it shows what the agents do and spend. A
    # secret: never printed; at least 16 characters, so it cannot be guessed by trying.
    dashboard_token: SecretStr | None = None
    # The GitHub login the dashboard's "retry" acts as: it becomes the actor of the same
    # `/retry` event a comment would make, so the same trust check (write permission on
    # the repository) applies. Empty: the dashboard offers no retry (re-driving a dead
    # letter needs no actor: the delivery keeps its own).
    dashboard_actor: str = ""

    # Agents.
    agent: Literal["claude", "scripted", "command"] = "claude"
    agent_command: str | None = None
    max_turns: int | None = None  # per phase run; None: the agent's per-phase defaults
    max_budget_usd: float | None = None  # per phase run; None: the agent's per-phase defaults
    claude_model: str | None = None  # None: the CLI's default model
    # The model API the worker's proxy forwards to, and the credential it adds; the agent
    # itself never holds it. Read from the names the Claude CLI and SDKs use, so an
    # environment already set up for them works unchanged (AW_MODEL_* win).
    model_base_url: str = Field(
        default="https://api.anthropic.com",
        validation_alias=AliasChoices("AW_MODEL_BASE_URL", "ANTHROPIC_BASE_URL"),
    )
    model_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("AW_MODEL_API_KEY", "ANTHROPIC_API_KEY")
    )
    model_auth_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("AW_MODEL_AUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN"),
    )
    task_budget_usd: float | None = 20.0  # per task, across attempts and resumes
    # Agent runs at once across every worker of the deployment (slots leased in the
    # database): each is a CPU- and memory-hungry process, and spends money.
    max_agents: int = Field(default=4, ge=1)
    # Of which on one repository: its runs share its clone, its lock and its API quota.
    max_agents_per_repo: int = Field(default=2, ge=1)
    # What the whole deployment may spend per UTC day (model proxy's meter, and what agents
    # without it report); past it new agent runs wait for the next day. None: no cap, since
    # only the operator knows the bill they accept (the per-phase and per-task caps still hold).
    daily_budget_usd: float | None = Field(default=None, gt=0)
    workspace_dir: Path = Path(".agent-workflow/workspaces")
    scripted_duration_s: float = 0.0  # the scripted agent (tests, demo): instant by default
    scripted_jitter_s: float = 0.0
    scripted_seed: int = 0

    # Agent confinement.
    # The agent (Claude CLI or command) never inherits the worker's environment: it gets an
    # allowlist (PATH, locale, the model's settings...) and a HOME of its own. Comma-separated
    # names added to that allowlist; AW_*, GitHub tokens, database/Redis URLs are refused.
    agent_env_allow: str = ""
    # The agent's shell (Claude's Bash in deliver/compound, a command agent's whole program)
    # runs sandboxed by bubblewrap: read-only machine, writes only in the worktree, no
    # network, none of the worker's files or processes. Without a working sandbox those
    # phases are blocked ("sandbox unavailable"). "off" runs the agent unconfined: only
    # where the worker's whole machine is itself a throwaway sandbox.
    agent_sandbox: Literal["on", "off"] = "on"
    # Resume on any machine (Claude agent): "on" mirrors each session's transcript to the
    # database, so a takeover on another machine resumes the conversation instead of
    # starting it afresh; "off" resumes only from the worker's own disk.
    agent_session_store: Literal["on", "off"] = "on"
    # "on": after each agent turn that changed files, the worktree is checkpointed to a
    # hidden ref on the remote (refs/agent-workflow/checkpoints/...), and a takeover starts
    # from the newest one; "off": a takeover elsewhere starts from the pushed branch.
    agent_checkpoints: Literal["on", "off"] = "on"
    # Domains sandboxed Claude commands may reach (comma-separated; none by default, so
    # nothing the model writes can send data anywhere). Claude agent only.
    agent_allowed_domains: str = ""

    # Repository safety.
    # A workflow file runs in CI with the repository's secrets, so a branch the agent
    # wrote that changes `.github/workflows/` is not pushed (the phase is blocked,
    # naming the files) unless a person has decided this repository allows it.
    allow_workflow_changes: bool = False

    # Leases, recovery, concurrency.
    # Keep the phase lease no longer than BullMQ's lock: when BullMQ hands a dead worker's
    # job to another (after lockDuration + stalledInterval), the lease has expired too and
    # the new worker takes the phase over at once.
    lease_s: float = 30.0
    heartbeat_s: float = 10.0  # a third of the lease: two missed beats still keep it
    max_failures: int = 3  # errors in one attempt before the phase is `failed` (visibly)
    # Live progress: the attempt's progress comment is edited at most once per this many
    # seconds. 15 s shows a person watching the issue every step that matters, while one
    # agent stays well inside GitHub's secondary limit on content-creating requests
    # (80 a minute); each edit is one PATCH. 0 turns live progress off (no comment).
    progress_interval_s: float = Field(default=15.0, ge=0)
    # Routing jobs at once per process (embedded queue and BullMQ worker alike); they
    # mostly wait on the database, GitHub and agents, which `max_agents` bounds anyway.
    concurrency: int = 4
    sweep_interval_s: float = 15.0  # cheap (indexed reads); unfinished work waits at most this
    sweep_grace_s: float = 30.0  # how old an unrouted delivery or a pending phase must be
    lock_duration_ms: int = 30_000  # BullMQ's default: a dead worker's job returns after ~30 s
    stalled_interval_ms: int = 30_000  # BullMQ's default; each check is one Lua script
    max_stalled_count: int = 1  # BullMQ's default: the sweeper covers a job failed for stalling
    shutdown_grace_s: float = 25.0  # inside Kubernetes' default 30 s between SIGTERM and SIGKILL
    owner: str = Field(default_factory=lambda: f"{os.uname().nodename}:{os.getpid()}")

    @field_validator(
        "plan_label",
        "approve_label",
        "plan_command",
        "approve_command",
        "retry_command",
        "revise_command",
        "repair_command",
    )
    @classmethod
    def _trigger(cls, value: str) -> str:
        # An empty command would match every comment whose first line is empty.
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @model_validator(mode="after")
    def _distinct_triggers(self) -> Settings:
        if first_repeat([label_key(self.plan_label), label_key(self.approve_label)]):
            raise ValueError("AW_PLAN_LABEL and AW_APPROVE_LABEL must differ")
        commands = {
            "AW_PLAN_COMMAND": self.plan_command,
            "AW_APPROVE_COMMAND": self.approve_command,
            "AW_RETRY_COMMAND": self.retry_command,
            "AW_REVISE_COMMAND": self.revise_command,
            "AW_REPAIR_COMMAND": self.repair_command,
        }
        # The repair and issue commands may begin with the revise command (the defaults
        # do): an exact command wins over a revise instruction, so only equality is dead.
        clash = first_repeat([command_key(c) for c in commands.values()])
        if clash is not None:
            names = list(commands)
            raise ValueError(f"{names[clash[0]]} and {names[clash[1]]} must differ")
        return self

    @field_validator("dashboard_token")
    @classmethod
    def _dashboard_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None  # set but empty: as unset (no dashboard)
        if len(value.get_secret_value()) < MIN_DASHBOARD_TOKEN:
            raise ValueError(f"must be at least {MIN_DASHBOARD_TOKEN} characters")
        return value

    @field_validator("github_api_url", "model_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s) URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("github_hooks")
    @classmethod
    def _github_hooks(cls, value: str) -> str:
        parse_hooks(value)
        return value

    @model_validator(mode="after")
    def _backfill_within_retention(self) -> Settings:
        if self.backfill_max_age_s > self.delivery_retention_days * 86_400:
            raise ValueError(
                "AW_BACKFILL_MAX_AGE_S must not exceed AW_DELIVERY_RETENTION_DAYS "
                "(a deleted delivery would be ingested again)"
            )
        return self

    @property
    def hooks(self) -> tuple[tuple[str, int], ...]:
        """`AW_GITHUB_HOOKS` as (`owner/repo`, hook id) pairs."""
        return parse_hooks(self.github_hooks)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"must be a redis:// URL, got {value!r}")
        return value or None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment first, then the optional TOML file."""
        path = Path(os.environ.get("AW_CONFIG_FILE", "agent-workflow.toml"))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    def marker_key(self) -> bytes:
        """The key effect markers are signed with: `AW_MARKER_SECRET`, or one derived from
        `AW_WEBHOOK_SECRET` (HMAC-SHA256 as a KDF, so the webhook secret is not reused
        as is); a `ConfigError` when neither is set."""
        if self.marker_secret is not None and self.marker_secret.get_secret_value():
            return self.marker_secret.get_secret_value().encode()
        if self.webhook_secret is not None and self.webhook_secret.get_secret_value():
            webhook = self.webhook_secret.get_secret_value().encode()
            return hmac.new(webhook, b"agent-workflow effect markers v1", hashlib.sha256).digest()
        raise ConfigError(
            "neither AW_MARKER_SECRET nor AW_WEBHOOK_SECRET is set: effect markers cannot be signed"
        )

    def require_webhook_secret(self) -> str:
        """The webhook secret, or a `ConfigError` saying how to set it."""
        if self.webhook_secret is None or not self.webhook_secret.get_secret_value():
            raise ConfigError("AW_WEBHOOK_SECRET is not set: GitHub webhooks cannot be verified")
        return self.webhook_secret.get_secret_value()


def redacted_url(url: str) -> str:
    """`url` with its password (if any) replaced by `***`, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def load_settings(**overrides: object) -> Settings:
    """Read the settings; a validation failure becomes one `ConfigError` line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        if not field:  # a check across settings names them in its message
            raise ConfigError(f"invalid settings: {first['msg']}") from exc
        raise ConfigError(f"invalid setting AW_{field.upper()}: {first['msg']}") from exc


def parse_hooks(value: str) -> tuple[tuple[str, int], ...]:
    """`owner/repo:hook_id,…` as pairs; raises ValueError naming a malformed entry."""
    hooks: list[tuple[str, int]] = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        repo, _, hook_id = entry.rpartition(":")
        owner, _, name = repo.partition("/")
        if not owner or not name or "/" in name or not hook_id.isdigit():
            raise ValueError(f"{entry!r} is not owner/repo:hook_id")
        hooks.append((repo, int(hook_id)))
    return tuple(hooks)
