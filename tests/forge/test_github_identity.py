"""Who we are: `whoami` (GET /user with a token, GET /app as an App) and PR authors."""

from __future__ import annotations

import pytest

from agent_workflow.config import load_settings
from agent_workflow.core.errors import ConfigError, ForgeError
from agent_workflow.forge.github import GitHubForge
from agent_workflow.forge.policy import RequestPolicy
from agent_workflow.service.runtime import own_identity
from github_emulator import EmulatorServer
from tests.forge.helpers import BOT, REPO
from tests.forge.test_github_app_auth import APP_ID, INSTALLATION, _app_emulator, _key_pair

USER_GET = ("GET", "/user")
APP_GET = ("GET", "/app")


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    return _key_pair()


async def test_whoami__a_token_is_the_user_it_acts_as(
    emu: EmulatorServer, forge: GitHubForge
) -> None:
    assert await forge.whoami() == BOT
    assert (await emu.admin.counters()).get(*USER_GET) == 1


async def test_whoami__an_app_is_its_slug_bot(keys: tuple[str, str]) -> None:
    """GET /app is authenticated by the App's JWT (an installation token cannot read it)."""
    async with await _app_emulator(keys[1]) as emu:
        async with GitHubForge.from_app(
            APP_ID, keys[0], INSTALLATION, base_url=emu.url, policy=RequestPolicy.fast()
        ) as forge:
            assert await forge.whoami() == BOT  # the emulator's App is `agent-workflow`
        counters = await emu.admin.counters()
        assert counters.get(*APP_GET) == 1
        assert counters.get(*USER_GET) == 0


async def test_whoami__refused_credentials_are_an_error(emu: EmulatorServer) -> None:
    async with GitHubForge.from_token(
        "not-a-token", base_url=emu.url, policy=RequestPolicy.fast()
    ) as forge:
        with pytest.raises(ForgeError):
            await forge.whoami()


async def test_own_identity__learned_at_start_unless_overridden(
    emu: EmulatorServer, forge: GitHubForge
) -> None:
    learned = load_settings(webhook_secret="s", bot_login="")
    assert await own_identity(learned, forge) == BOT
    overridden = load_settings(webhook_secret="s", bot_login="someone-else")
    assert await own_identity(overridden, forge) == "someone-else"
    async with GitHubForge.from_token(
        "not-a-token", base_url=emu.url, policy=RequestPolicy.fast()
    ) as refused:
        with pytest.raises(ConfigError, match="AW_BOT_LOGIN"):
            await own_identity(learned, refused)


def test_marker_key__own_secret_or_derived_from_the_webhook_secret() -> None:
    derived = load_settings(webhook_secret="hook", marker_secret=None).marker_key()
    assert derived not in (b"", b"hook")
    assert derived == load_settings(webhook_secret="hook").marker_key()  # deterministic
    assert derived != load_settings(webhook_secret="other").marker_key()
    assert load_settings(webhook_secret="hook", marker_secret="m").marker_key() == b"m"
    with pytest.raises(ConfigError, match="AW_MARKER_SECRET"):
        load_settings(webhook_secret=None, marker_secret=None).marker_key()


async def test_pull_requests_carry_their_author(emu: EmulatorServer, forge: GitHubForge) -> None:
    await emu.admin.open_pull(REPO, head="agent/issue-1", title="theirs", user="mallory")
    found = await forge.find_pull_request(REPO, "agent/issue-1")
    assert found is not None
    assert found.author == "mallory"
    mine = await forge.open_pull_request(
        REPO, head="agent/issue-2", base="main", title="ours", body=""
    )
    assert mine.author == BOT
