"""A GitHub App installed on two accounts: each repository's calls carry the token of its
own installation (minted per installation, narrowed for pushes), and the emulator refuses
(404) a token of the other installation, as GitHub does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from agent_workflow.core.model import Intent, PhaseStatus
from agent_workflow.core.routed import Action
from agent_workflow.forge.github import GitHubForge
from agent_workflow.forge.policy import RequestPolicy
from agent_workflow.store import Store
from github_emulator import EmulatorConfig, EmulatorServer
from tests.conftest import FakeClock
from tests.core.helpers import make_core
from tests.forge.test_github_app_auth import APP_ID, _key_pair
from tests.support.events import TRUSTED, event

ACME, GLOBEX = 11, 22
ACME_REPO, GLOBEX_REPO = "acme/app", "globex/site"


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    return _key_pair()


@pytest.fixture
async def two(keys: tuple[str, str]) -> AsyncIterator[EmulatorServer]:
    config = EmulatorConfig(
        tokens={},
        app_id=APP_ID,
        app_public_key_pem=keys[1],
        installations={ACME: "acme", GLOBEX: "globex"},
    )
    async with EmulatorServer(config) as server:
        for repo in (ACME_REPO, GLOBEX_REPO):
            await server.admin.create_repo(repo)
            await server.admin.set_permission(repo, TRUSTED, "write")
        yield server


def _app(emu: EmulatorServer, keys: tuple[str, str], store: Store | None = None) -> GitHubForge:
    hint = store.tasks.installation_of if store is not None else None
    return GitHubForge.from_app(
        APP_ID, keys[0], base_url=emu.url, policy=RequestPolicy.fast(), hint=hint
    )


async def test_two_installations__each_repository_with_its_own_installation_token(
    two: EmulatorServer, keys: tuple[str, str]
) -> None:
    """No `AW_GITHUB_INSTALLATION_ID`: the installation of each repository is asked once
    (`GET /repos/{o}/{r}/installation`), a token minted per installation and reused."""
    a = await two.admin.create_issue(ACME_REPO, "A")
    g = await two.admin.create_issue(GLOBEX_REPO, "G")
    async with _app(two, keys) as forge:
        for _ in range(2):
            await forge.create_comment(ACME_REPO, a, "hello acme")
            await forge.create_comment(GLOBEX_REPO, g, "hello globex")
    mints = await two.admin.installation_tokens()
    assert sorted(m["installation_id"] for m in mints) == [ACME, GLOBEX]
    counters = await two.admin.counters()
    assert counters.get("GET", "/repos/{owner}/{repo}/installation") == 2
    assert counters.get("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments") == 4


async def test_push_token__narrowed_to_the_repository_by_its_installation(
    two: EmulatorServer, keys: tuple[str, str]
) -> None:
    async with _app(two, keys) as forge:
        await forge.push_token(ACME_REPO)
        await forge.push_token(GLOBEX_REPO)
    mints = await two.admin.installation_tokens()
    assert [(m["installation_id"], m["repositories"], m["permissions"]) for m in mints] == [
        (ACME, ["app"], {"contents": "write"}),
        (GLOBEX, ["site"], {"contents": "write"}),
    ]


async def test_events_from_two_installations__each_task_acts_with_its_installation(
    two: EmulatorServer, keys: tuple[str, str], store: Store, clock: FakeClock
) -> None:
    """Events of both installations plan an issue each: every call of a task (permission,
    comment, labels) is made with its own installation's token (a wrong one is a 404),
    and each task remembers the installation its event came through."""
    a = await two.admin.create_issue(ACME_REPO, "A")
    g = await two.admin.create_issue(GLOBEX_REPO, "G")
    async with _app(two, keys, store) as forge:
        core = make_core(store, clock, forge=forge)
        for repo, number, installation in ((ACME_REPO, a, ACME), (GLOBEX_REPO, g, GLOBEX)):
            parsed = replace(
                event(Intent.START_PLAN, number, repo=repo), installation_id=installation
            )
            routed = await core.router.route(parsed)
            assert routed.action is Action.RAN, routed
            assert routed.status is PhaseStatus.COMPLETE, routed
    for repo, number, installation in ((ACME_REPO, a, ACME), (GLOBEX_REPO, g, GLOBEX)):
        task = await store.tasks.find(repo, number)
        assert task is not None
        assert task.installation_id == installation
        comments = await two.admin.comments(repo, number)
        assert [c.author for c in comments] == ["agent-workflow[bot]"], comments
    assert {m["installation_id"] for m in await two.admin.installation_tokens()} == {ACME, GLOBEX}
