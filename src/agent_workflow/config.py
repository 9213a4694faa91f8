"""Configuration from the environment (`AW_*`), optionally added to by a TOML file.

The file is `agent-workflow.toml` in the working directory, or the path in
`AW_CONFIG_FILE`; the environment wins over the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from agent_workflow.errors import ConfigError


class Settings(BaseSettings):
    """Every knob, with the default a single machine wants."""

    model_config = SettingsConfigDict(env_prefix="AW_", extra="ignore")

    # Storage and queue.
    database_url: str = "sqlite:///agent-workflow.db"
    redis_url: str | None = None  # unset: the embedded in-process queue
    queue_name: str = "agent-workflow"
    queue_prefix: str = "aw"

    # GitHub.
    github_api_url: str = "https://api.github.com"
    github_token: SecretStr | None = None
    github_app_id: str | None = None
    github_app_private_key: SecretStr | None = None  # PEM text, or a path to the PEM file
    github_installation_id: int | None = None
    github_mutation_interval_s: float = 1.0  # GitHub asks for ≥1 s between mutations per token
    github_timeout_s: float = 30.0
    bot_login: str = ""  # our own account; its events are ignored (any `[bot]` login is too)
    webhook_secret: SecretStr | None = None
    webhook_max_body_bytes: int = 1_048_576

    # HTTP server.
    host: str = "127.0.0.1"
    port: int = 8080

    # Agents.
    agent: Literal["claude", "scripted", "command"] = "claude"
    agent_command: str | None = None
    max_turns: int | None = None  # per phase run; None: the agent's per-phase defaults
    max_budget_usd: float | None = None  # per phase run; None: the agent's per-phase defaults
    claude_model: str | None = None  # None: the CLI's default model
    task_budget_usd: float | None = 20.0  # per task, across attempts and resumes
    max_agents: int = 4  # agent runs at once in this process
    max_agents_per_repo: int = 2
    workspace_dir: Path = Path(".agent-workflow/workspaces")
    scripted_duration_s: float = 0.0
    scripted_jitter_s: float = 0.0
    scripted_seed: int = 0

    # Leases, recovery, concurrency.
    # Keep the phase lease no longer than BullMQ's lock: when BullMQ hands a dead worker's
    # job to another (after lockDuration + stalledInterval), the lease has expired too and
    # the new worker takes the phase over at once.
    lease_s: float = 30.0
    heartbeat_s: float = 10.0
    max_failures: int = 3
    concurrency: int = 4  # routing jobs at once per process
    sweep_interval_s: float = 15.0
    sweep_grace_s: float = 30.0  # how old an unrouted delivery or a pending phase must be
    lock_duration_ms: int = 30_000
    stalled_interval_ms: int = 30_000
    max_stalled_count: int = 1
    shutdown_grace_s: float = 25.0
    owner: str = Field(default_factory=lambda: f"{os.uname().nodename}:{os.getpid()}")

    @field_validator("github_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s) URL, got {value!r}")
        return value.rstrip("/")

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

    def require_webhook_secret(self) -> str:
        """The webhook secret, or a `ConfigError` saying how to set it."""
        if self.webhook_secret is None or not self.webhook_secret.get_secret_value():
            raise ConfigError("AW_WEBHOOK_SECRET is not set: GitHub webhooks cannot be verified")
        return self.webhook_secret.get_secret_value()


def load_settings(**overrides: object) -> Settings:
    """Read the settings; a validation failure becomes one `ConfigError` line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"invalid setting AW_{field.upper()}: {first['msg']}") from exc
