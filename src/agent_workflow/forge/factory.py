"""Build the GitHub forge from settings: token auth or GitHub App auth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from agent_workflow.config import Settings
from agent_workflow.core.errors import ConfigError
from agent_workflow.forge.auth import InstallationHint
from agent_workflow.forge.github import GitHubForge
from agent_workflow.forge.policy import RequestPolicy


def _private_key(value: str) -> str:
    """The PEM itself, or read from the path it names."""
    if "-----BEGIN" in value:
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"AW_GITHUB_APP_PRIVATE_KEY is neither a PEM nor a readable file: {value}"
        )
    return path.read_text()


@asynccontextmanager
async def github_forge(
    settings: Settings, *, hint: InstallationHint | None = None
) -> AsyncIterator[GitHubForge]:
    """The adapter for `AW_GITHUB_API_URL`, authenticated by token or as a GitHub App.

    As an App, `AW_GITHUB_INSTALLATION_ID` is optional: each repository's calls use the
    installation its task's events named (`hint`, the tasks table) or GitHub says."""
    policy = RequestPolicy(
        timeout=settings.github_timeout_s, mutation_interval=settings.github_mutation_interval_s
    )
    if settings.github_token is not None:
        forge = GitHubForge.from_token(
            settings.github_token.get_secret_value(),
            base_url=settings.github_api_url,
            policy=policy,
        )
    elif settings.github_app_id and settings.github_app_private_key:
        forge = GitHubForge.from_app(
            settings.github_app_id,
            _private_key(settings.github_app_private_key.get_secret_value()),
            settings.github_installation_id,
            base_url=settings.github_api_url,
            policy=policy,
            hint=hint,
        )
    else:
        raise ConfigError(
            "no GitHub credentials: set AW_GITHUB_TOKEN, or AW_GITHUB_APP_ID and "
            "AW_GITHUB_APP_PRIVATE_KEY (AW_GITHUB_INSTALLATION_ID optional)"
        )
    async with forge:
        yield forge
