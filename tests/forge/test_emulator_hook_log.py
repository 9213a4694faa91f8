"""The emulator's hook-deliveries log (issue 12 §6), read through the adapter as GitHub's:
every attempt (the receiver down: `status_code` 0), newest first, cursor-paginated, one
attempt's request (headers, payload); the App's log (JWT) and a repository hook's
(token); the issues list and label events reconciliation reads."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from agent_workflow.demo.process import free_port
from agent_workflow.forge.github import GitHubForge
from agent_workflow.forge.http import GitHubApiError
from agent_workflow.forge.policy import RequestPolicy
from github_emulator import EmulatorConfig, EmulatorServer
from tests.forge.helpers import REPO, SECRET, TOKEN
from tests.forge.test_github_app_auth import APP_ID, INSTALLATION, keys

USER = "alice"
__all__ = ["keys"]  # the module's RSA key pair fixture


@pytest.fixture
async def down() -> AsyncIterator[EmulatorServer]:
    """An emulator whose webhook receiver is not listening (the service is down)."""
    url = f"http://127.0.0.1:{free_port()}/webhooks/github"
    async with EmulatorServer(token=TOKEN, webhook_url=url, webhook_secret=SECRET) as server:
        await server.admin.create_repo(REPO)
        await server.admin.set_permission(REPO, USER, "write")
        yield server


async def test_hook_log__receiver_down_attempt_listed_with_status_0_and_its_request(
    down: EmulatorServer,
) -> None:
    issue = await down.admin.create_issue(REPO, "Bug")
    acted = await down.admin.add_label(REPO, issue, "agent", user=USER)
    guid = acted.deliveries[0].id
    async with GitHubForge.from_token(
        TOKEN, base_url=down.url, policy=RequestPolicy.fast()
    ) as forge:
        attempts = [d async for d in forge.hook_deliveries((REPO, 1))]
        # Newest first: the label, then the issue's `opened`; nothing reached the receiver.
        assert [(d.event, d.status_code) for d in attempts] == [("issues", 0), ("issues", 0)]
        assert attempts[0].guid == guid
        assert attempts[0].delivered_at >= attempts[1].delivered_at
        request = await forge.hook_delivery((REPO, 1), attempts[0].id)
        with pytest.raises(GitHubApiError) as refused:
            [d async for d in forge.hook_deliveries((REPO, 999))]
    assert refused.value.status == 404
    assert request.headers["x-github-delivery"] == guid
    assert request.headers["x-github-hook-id"] == "1"
    assert request.payload["label"]["name"] == "agent"
    async with httpx.AsyncClient() as client:
        raw = await client.get(
            f"{down.url}/repos/{REPO}/hooks/1/deliveries",
            headers={"authorization": f"Bearer {TOKEN}"},
        )
    item = raw.json()[0]
    assert item["status"] == "failed to connect to host"
    assert item["action"] == "labeled"
    assert item["redelivery"] is False
    assert isinstance(item["repository_id"], int)
    assert item["delivered_at"].endswith("Z")


async def test_hook_log__newest_first_cursor_pages(down: EmulatorServer) -> None:
    issue = await down.admin.create_issue(REPO, "Bug")
    for name in ("a", "b", "c"):
        await down.admin.add_label(REPO, issue, name, user=USER)
    headers = {"authorization": f"Bearer {TOKEN}"}
    url: str | None = f"{down.url}/repos/{REPO}/hooks/1/deliveries?per_page=2"
    pages = []
    async with httpx.AsyncClient() as client:
        while url:
            response = await client.get(url, headers=headers)
            pages.append([d["id"] for d in response.json()])
            url = response.links.get("next", {}).get("url")
    assert pages == [[4, 3], [2, 1]]  # the issue's `opened`, then three labels
    assert "cursor=v1_3" in str(response.request.url)


async def test_hook_log__app_log_needs_the_app_jwt_and_names_the_installation(
    keys: tuple[str, str],
) -> None:
    config = EmulatorConfig(
        tokens={},
        app_id=APP_ID,
        app_public_key_pem=keys[1],
        installation_id=INSTALLATION,
        webhook_url=f"http://127.0.0.1:{free_port()}/hook",
        webhook_secret=SECRET,
    )
    async with EmulatorServer(config) as emu:
        await emu.admin.create_repo(REPO)
        issue = await emu.admin.create_issue(REPO, "Bug")
        await emu.admin.add_label(REPO, issue, "agent", user=USER)
        async with GitHubForge.from_app(
            APP_ID, keys[0], INSTALLATION, base_url=emu.url, policy=RequestPolicy.fast()
        ) as forge:
            attempts = [d async for d in forge.hook_deliveries(None)]
            request = await forge.hook_delivery(None, attempts[0].id)
            forge._app_authorization()
            repos = await forge.app_repositories()
        async with httpx.AsyncClient() as client:
            refused = await client.get(
                f"{emu.url}/app/hook/deliveries", headers={"authorization": "Bearer x"}
            )
            item = (
                await client.get(
                    f"{emu.url}/app/hook/deliveries",
                    headers={
                        "authorization": f"Bearer {forge.http.auth.app_jwt()}"  # type: ignore[attr-defined]
                    },
                )
            ).json()[0]
    assert len(attempts) == 2  # opened, labeled
    assert request.payload["installation"]["id"] == INSTALLATION
    assert item["installation_id"] == INSTALLATION
    assert refused.status_code == 401
    assert [r["full_name"] for r in repos] == [REPO]


async def test_reconcile_reads__open_labelled_issues_and_the_label_actor(
    down: EmulatorServer,
) -> None:
    labelled = await down.admin.create_issue(REPO, "Labelled")
    await down.admin.create_issue(REPO, "Not labelled")
    await down.admin.add_label(REPO, labelled, "agent", user=USER)
    async with GitHubForge.from_token(
        TOKEN, base_url=down.url, policy=RequestPolicy.fast()
    ) as forge:
        issues = [i async for i in forge.open_issues_labeled(REPO, "agent")]
        actor = await forge.label_actor(REPO, labelled, "Agent")
        none = await forge.label_actor(REPO, labelled, "other")
    assert [i["number"] for i in issues] == [labelled]
    assert actor is not None
    assert actor.user["login"] == USER
    assert none is None
