"""`.github/agent-workflow.yml`: read through the contents API, cached by ETag, validated.

`ForgeRepoConfigs` implements the core's `RepoConfigs` port over any `Forge`:

- A repository's file is read from its default branch; the answer is kept per process with
  its ETag, and each later read is a conditional request (`If-None-Match`) that GitHub
  answers 304 while the file is unchanged — a 304 costs no rate limit (G6).
- An absent file (404 has no ETag) is remembered as absent for `ABSENT_RECHECK_S`.
- A `push` to the default branch whose commits add, modify or remove the file drops the
  entry (`invalidate_from_push`, called by the ingress that receives the webhook): the
  next read is a full one. Other processes revalidate by ETag on their next read anyway.
- Every key is optional; unknown keys are refused (`extra="forbid"`). An invalid file
  (bad YAML, a wrong type, an unknown key) yields `RepoConfig.error` with pydantic's message
  and empty settings: the deployment's values apply, and the runner says so once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent_workflow.core.clock import now
from agent_workflow.core.model import Phase
from agent_workflow.core.ports import Clock, Forge, RepoFile
from agent_workflow.core.repo_settings import (
    CONFIG_PATH,
    PhaseLimits,
    RepoConfig,
    RepoSettings,
)
from agent_workflow.core.text import command_key, first_repeat, label_key

log = structlog.get_logger(__name__)

ABSENT_RECHECK_S = 300.0
"""How long a file found absent stays absent here without asking again: a 404 carries no
ETag to revalidate with, so each check would cost a rate-limited request; a push that adds
the file drops the entry at once in the process that receives the webhook."""
MAX_CONFIG_BYTES = 64 * 1024
"""A settings file is a few lines; anything larger is refused as invalid, not parsed."""
MAX_ERROR_CHARS = 1500
"""The error quoted in the issue comment is cut to this."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Limit(_Strict):
    max_turns: int | None = Field(default=None, ge=1)
    max_budget_usd: float | None = Field(default=None, ge=0)


class _Limits(_Strict):
    plan: _Limit | None = None
    deliver: _Limit | None = None
    compound: _Limit | None = None
    task_budget_usd: float | None = Field(default=None, ge=0)


class _Agent(_Strict):
    model: str | None = Field(default=None, min_length=1, max_length=200)
    allowed_domains: list[str] | None = None


class _PullRequests(_Strict):
    draft: bool | None = None


class _Rounds(_Strict):
    max_revise: int | None = Field(default=None, ge=0)
    max_repair: int | None = Field(default=None, ge=0)


# GitHub caps a label's name at 50 characters; a command is one short line.
_LABEL = Field(default=None, min_length=1, max_length=50, pattern=r"^[^\r\n]*\S[^\r\n]*$")
_COMMAND = Field(default=None, min_length=2, max_length=100, pattern=r"^/\S[^\r\n]*$")


class _Triggers(_Strict):
    """The repository's own issue triggers. A command starts with `/` (the ingress keeps
    every issue comment whose first line does, so a repository's command is never dropped
    before its settings are read); labels compare case-insensitively."""

    plan_label: str | None = _LABEL
    approve_label: str | None = _LABEL
    plan_command: str | None = _COMMAND
    approve_command: str | None = _COMMAND
    retry_command: str | None = _COMMAND

    @model_validator(mode="after")
    def _distinct(self) -> _Triggers:
        labels = [label_key(v) for v in (self.plan_label, self.approve_label) if v]
        commands = [
            command_key(v)
            for v in (self.plan_command, self.approve_command, self.retry_command)
            if v
        ]
        if first_repeat(labels) or first_repeat(commands):
            raise ValueError("triggers must differ from one another")
        return self

    def given(self) -> dict[str, str]:
        """The triggers the file sets, by name, whitespace trimmed."""
        return {k: v.strip() for k, v in self.model_dump().items() if v is not None}


class ConfigFile(_Strict):
    """The file's schema: every key optional, no other key allowed."""

    triggers: _Triggers | None = None
    limits: _Limits | None = None
    agent: _Agent | None = None
    pull_requests: _PullRequests | None = None
    rounds: _Rounds | None = None

    def settings(self) -> RepoSettings:
        """As the core's value."""
        limits = self.limits or _Limits()
        per_phase = {
            phase: PhaseLimits(limit.max_turns, limit.max_budget_usd)
            for phase, limit in (
                (Phase.PLAN, limits.plan),
                (Phase.DELIVER, limits.deliver),
                (Phase.COMPOUND, limits.compound),
            )
            if limit is not None
        }
        agent, rounds = self.agent or _Agent(), self.rounds or _Rounds()
        domains = agent.allowed_domains
        return RepoSettings(
            limits=MappingProxyType(per_phase),
            task_budget_usd=limits.task_budget_usd,
            max_revise=rounds.max_revise,
            max_repair=rounds.max_repair,
            draft=(self.pull_requests or _PullRequests()).draft,
            model=agent.model,
            allowed_domains=None if domains is None else tuple(d.strip() for d in domains),
            triggers=MappingProxyType((self.triggers or _Triggers()).given()),
        )


def parse_config(text: str) -> RepoSettings:
    """The settings the file holds; `ValueError` naming what is wrong."""
    if len(text.encode()) > MAX_CONFIG_BYTES:
        raise ValueError(f"the file is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {exc}") from None
    if data is None:
        return RepoSettings()
    try:
        return ConfigFile.model_validate(data).settings()
    except ValidationError as exc:
        raise ValueError(str(exc)) from None


@dataclass(frozen=True)
class _Cached:
    config: RepoConfig
    etag: str  # "" for an absent file
    read_at: float


class ForgeRepoConfigs:
    """The `RepoConfigs` port over a `Forge`, cached per process (see the module docstring)."""

    def __init__(self, forge: Forge, *, clock: Clock = now, path: str = CONFIG_PATH) -> None:
        self._forge = forge
        self._clock = clock
        self.path = path
        self._cache: dict[str, _Cached] = {}

    async def for_repo(self, repo: str, default_branch: str) -> RepoConfig:
        """The repository's settings; at most one conditional read (see the module)."""
        key = repo.casefold()
        cached = self._cache.get(key)
        if cached is not None and not cached.etag:
            if self._clock() - cached.read_at < ABSENT_RECHECK_S:
                return cached.config
            cached = None
        etag = cached.etag if cached is not None else None
        found = await self._forge.file_contents(repo, self.path, default_branch, etag=etag)
        if found is not None and found.unchanged and cached is not None:
            return cached.config
        config = RepoConfig() if found is None else _config(found)
        self._cache[key] = _Cached(config, "" if found is None else found.etag, self._clock())
        if found is not None:
            log.info("repo_config.read", repo=repo, version=found.sha, valid=not config.error)
        return config

    def invalidate(self, repo: str) -> None:
        """Forget what was read of `repo`: the next read is a full one."""
        self._cache.pop(repo.casefold(), None)

    def invalidate_from_push(self, payload: Mapping[str, Any]) -> bool:
        """A `push` webhook: drop the entry when it is to the default branch and one of its
        commits adds, modifies or removes the file. True when it did."""
        if not pushed_config(payload, self.path):
            return False
        repository = payload.get("repository")
        name = repository.get("full_name") if isinstance(repository, Mapping) else None
        if not isinstance(name, str):
            return False
        self.invalidate(name)
        log.info("repo_config.invalidated", repo=name)
        return True


def pushed_config(payload: Mapping[str, Any], path: str = CONFIG_PATH) -> bool:
    """True for a push to the repository's default branch that touches `path`."""
    repository = payload.get("repository")
    if not isinstance(repository, Mapping):
        return False
    branch = repository.get("default_branch")
    if not isinstance(branch, str) or payload.get("ref") != f"refs/heads/{branch}":
        return False
    commits = payload.get("commits")
    listed = [c for c in commits if isinstance(c, Mapping)] if isinstance(commits, list) else []
    head = payload.get("head_commit")
    if not listed and isinstance(head, Mapping):
        listed = [head]
    for commit in listed:
        for kind in ("added", "modified", "removed"):
            paths = commit.get(kind)
            if isinstance(paths, list) and path in paths:
                return True
    return False


def _config(found: RepoFile) -> RepoConfig:
    try:
        return RepoConfig(parse_config(found.text), version=found.sha)
    except ValueError as exc:
        error = str(exc).replace("`", "'")
        if len(error) > MAX_ERROR_CHARS:
            error = error[: MAX_ERROR_CHARS - 1] + "…"
        return RepoConfig(version=found.sha, error=error)
