"""Per-repository settings (issue 12 item 4): what a repository's `.github/agent-workflow.yml`
asks for, and how it narrows the deployment's values.

The core sees a `RepoSettings` value (every field None: the deployment's value) resolved by
the `RepoConfigs` port, at most once per agent run of a phase attempt (the runner) and once
per round that opens (the round router). Reading, caching and validating the file are the
adapter's (`forge.repo_config`); nothing here knows of YAML or HTTP.

A repository can only narrow what the deployment allows: a turn or dollar limit, the task
budget and the round limits are the smaller of the two; allowed domains are those the
deployment allows too. The model and whether the pull request is a draft are the
repository's choice (every run stays bounded by the limits).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, TypeVar

from agent_workflow.core.model import Phase

CONFIG_PATH = ".github/agent-workflow.yml"
"""Where a repository keeps its settings, on its default branch."""

N = TypeVar("N", int, float)


@dataclass(frozen=True)
class PhaseLimits:
    """How far one run of a phase may go (None: no limit)."""

    max_turns: int | None = None
    max_budget_usd: float | None = None


@dataclass(frozen=True)
class RepoSettings:
    """What a repository asks for; None (or absent from `limits`): the deployment's value."""

    limits: Mapping[Phase, PhaseLimits] = field(default_factory=lambda: MappingProxyType({}))
    task_budget_usd: float | None = None
    max_revise: int | None = None
    max_repair: int | None = None
    draft: bool | None = None
    model: str | None = None
    allowed_domains: tuple[str, ...] | None = None
    # The repository's own words for the issue triggers (`plan_label`, `approve_label`,
    # `plan_command`, `approve_command`, `retry_command`): each replaces the deployment's.
    # Applied where deliveries are routed (`ingress.repo_triggers`), not by the core.
    triggers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class RepoConfig:
    """One read of a repository's settings file.

    `version` is the file's blob sha ("" when there is none); `error` says why the file
    was refused (then `settings` is empty: the deployment's values apply)."""

    settings: RepoSettings = field(default_factory=RepoSettings)
    version: str = ""
    error: str = ""


class RepoConfigs(Protocol):
    """The settings of a repository, as its default branch holds them now."""

    async def for_repo(self, repo: str, default_branch: str) -> RepoConfig:
        """The repository's settings (cached by the implementation; a read is at most a
        conditional request that GitHub answers 304 when nothing changed)."""
        ...


class NoRepoConfigs:
    """No repository settings anywhere: every repository gets the deployment's values."""

    async def for_repo(self, repo: str, default_branch: str) -> RepoConfig:
        """Always the empty settings."""
        return RepoConfig()


def capped(wanted: N | None, cap: N | None) -> N | None:
    """The repository's value, never above the deployment's cap (None: not set / no cap)."""
    if wanted is None:
        return cap
    if cap is None:
        return wanted
    return min(wanted, cap)


def phase_limits(
    settings: RepoSettings, deployment: Mapping[Phase, PhaseLimits], phase: Phase
) -> PhaseLimits:
    """The limits of one run of `phase`: the repository's, capped by the deployment's."""
    ours = deployment.get(phase, PhaseLimits())
    theirs = settings.limits.get(phase, PhaseLimits())
    return PhaseLimits(
        max_turns=capped(theirs.max_turns, ours.max_turns),
        max_budget_usd=capped(theirs.max_budget_usd, ours.max_budget_usd),
    )


def allowed_domains(settings: RepoSettings, deployment: tuple[str, ...]) -> tuple[str, ...]:
    """The domains the repository asks for that the deployment allows (all of the
    deployment's when it asks for none in particular)."""
    if settings.allowed_domains is None:
        return deployment
    allowed = {d.casefold() for d in deployment}
    return tuple(d for d in settings.allowed_domains if d.casefold() in allowed)


def invalid_comment(path: str, branch: str, error: str) -> str:
    """The body of the one comment that says a settings file was refused (`error` is
    neutralised by the caller)."""
    return (
        f"**agent-workflow**: `{path}` on `{branch}` is not valid, so this repository's "
        "settings are not applied: the deployment's values are used instead.\n\n"
        f"```\n{error}\n```\n\nFix the file on the default branch; the next run reads it again."
    )
