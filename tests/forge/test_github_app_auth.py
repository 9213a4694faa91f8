"""GitHub App auth: RS256 JWT → installation token, cached, re-minted when stale or revoked."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from agent_workflow.forge.auth import AppAuth
from agent_workflow.forge.github import GitHubForge
from agent_workflow.forge.http import GitHubApiError, GitHubHttp
from agent_workflow.forge.policy import RequestPolicy
from github_emulator import EmulatorConfig, EmulatorServer
from tests.forge.helpers import BOT, REPO

APP_ID = 4242
INSTALLATION = 77
MINT = ("POST", "/app/installations/{installation_id}/access_tokens")
COMMENT_POST = ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments")


def _key_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    return _key_pair()


async def _app_emulator(public_pem: str, token_ttl: float = 3600.0) -> EmulatorServer:
    config = EmulatorConfig(
        tokens={},
        app_id=APP_ID,
        app_public_key_pem=public_pem,
        installation_id=INSTALLATION,
        installation_token_ttl=token_ttl,
    )
    return EmulatorServer(config)


@pytest.fixture
async def app_emu(keys: tuple[str, str]) -> AsyncIterator[EmulatorServer]:
    async with await _app_emulator(keys[1]) as server:
        await server.admin.create_repo(REPO)
        yield server


def _forge(emu: EmulatorServer, auth: AppAuth) -> GitHubForge:
    return GitHubForge(GitHubHttp(auth, base_url=emu.url, policy=RequestPolicy.fast()))


async def test_app_token__minted_once_and_reused(
    app_emu: EmulatorServer, keys: tuple[str, str]
) -> None:
    number = await app_emu.admin.create_issue(REPO, "Bug")
    async with GitHubForge.from_app(
        APP_ID, keys[0], INSTALLATION, base_url=app_emu.url, policy=RequestPolicy.fast()
    ) as forge:
        await forge.create_comment(REPO, number, "one")
        await asyncio.gather(*(forge.create_comment(REPO, number, "many") for _ in range(3)))
        await forge.list_comments(REPO, number)
    counters = await app_emu.admin.counters()
    assert counters.get(*MINT) == 1
    assert counters.get(*COMMENT_POST) == 4
    assert forge.stats.token_requests == 1
    assert {c.author for c in await app_emu.admin.comments(REPO, number)} == {BOT}


async def test_app_token__reminted_when_close_to_expiry(keys: tuple[str, str]) -> None:
    """A 2 s token is refreshed after half its life (the 5-minute margin is capped at ttl/2)."""
    async with await _app_emulator(keys[1], token_ttl=2.0) as emu:
        await emu.admin.create_repo(REPO)
        number = await emu.admin.create_issue(REPO, "Bug")
        async with _forge(emu, AppAuth(APP_ID, keys[0], INSTALLATION)) as forge:
            await forge.create_comment(REPO, number, "a")
            await forge.create_comment(REPO, number, "b")
            assert (await emu.admin.counters()).get(*MINT) == 1
            await asyncio.sleep(1.1)
            await forge.create_comment(REPO, number, "c")
            assert (await emu.admin.counters()).get(*MINT) == 2


async def test_app_token__cached_until_five_minutes_before_expiry(
    app_emu: EmulatorServer, keys: tuple[str, str]
) -> None:
    now = [time.time()]
    auth = AppAuth(APP_ID, keys[0], INSTALLATION, clock=lambda: now[0])
    async with _forge(app_emu, auth) as forge:
        await forge.list_comments(REPO, await app_emu.admin.create_issue(REPO, "Bug"))
        first_refresh = auth.refresh_at
        assert first_refresh == pytest.approx(now[0] + 3600 - 300, abs=2)
        now[0] = first_refresh - 1
        await forge.permission(REPO, "someone")
        assert forge.stats.token_requests == 1
        now[0] = first_refresh + 1
        await forge.permission(REPO, "someone-else")
        assert forge.stats.token_requests == 2


async def test_app_token__revoked_token_is_reminted_once(
    app_emu: EmulatorServer, keys: tuple[str, str]
) -> None:
    number = await app_emu.admin.create_issue(REPO, "Bug")
    async with _forge(app_emu, AppAuth(APP_ID, keys[0], INSTALLATION)) as forge:
        await forge.create_comment(REPO, number, "a")
        await app_emu.admin.revoke_installation_tokens()
        await forge.create_comment(REPO, number, "b")
    assert [c.body for c in await app_emu.admin.comments(REPO, number)] == ["a", "b"]
    counters = await app_emu.admin.counters()
    assert counters.get(*MINT) == 2
    assert counters.get(*COMMENT_POST) == 3  # the 401 was not applied, so resending is safe


async def test_app_jwt__signed_with_the_wrong_key_is_refused(
    app_emu: EmulatorServer,
) -> None:
    wrong_private, _ = _key_pair()
    number = await app_emu.admin.create_issue(REPO, "Bug")
    async with _forge(app_emu, AppAuth(APP_ID, wrong_private, INSTALLATION)) as forge:
        with pytest.raises(GitHubApiError) as refused:
            await forge.create_comment(REPO, number, "x")
    assert refused.value.status == 401
    assert (await app_emu.admin.counters()).get(*COMMENT_POST) == 0


async def test_app_jwt__wrong_installation_is_404(
    app_emu: EmulatorServer, keys: tuple[str, str]
) -> None:
    async with _forge(app_emu, AppAuth(APP_ID, keys[0], INSTALLATION + 1)) as forge:
        with pytest.raises(GitHubApiError) as refused:
            await forge.list_comments(REPO, 1)
    assert refused.value.status == 404


async def test_push_token__narrowed_to_the_repository_and_contents_write(
    app_emu: EmulatorServer, keys: tuple[str, str]
) -> None:
    async with GitHubForge.from_app(
        APP_ID, keys[0], INSTALLATION, base_url=app_emu.url, policy=RequestPolicy.fast()
    ) as forge:
        await forge.list_comments(REPO, await app_emu.admin.create_issue(REPO, "Bug"))
        push = await forge.push_token(REPO)
        again = await forge.push_token(REPO)
        api_header = await forge.http.auth.authorization(forge.http)
    minted = app_emu.emulator.credentials.minted(push)
    assert minted is not None
    assert minted.repositories == (REPO.partition("/")[2],)
    assert minted.permissions == {"contents": "write"}
    assert again == push  # cached until shortly before it expires
    assert api_header != f"Bearer {push}"  # the API's broad token never goes to git
    assert (await app_emu.admin.counters()).get(*MINT) == 2


async def test_push_token__a_fixed_token_is_used_as_is(app_emu: EmulatorServer) -> None:
    async with GitHubForge.from_token(
        "ghp_fixed", base_url=app_emu.url, policy=RequestPolicy.fast()
    ) as forge:
        assert await forge.push_token(REPO) == "ghp_fixed"
