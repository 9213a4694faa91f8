"""The emulator's REST API answers like GitHub: codes, bodies, pagination, headers, counters."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from github_emulator import EmulatorConfig, EmulatorServer
from tests.forge.helpers import BOT, REPO, TOKEN

COMMENTS = "POST /repos/{owner}/{repo}/issues/{issue_number}/comments"


@pytest.fixture
async def api(emu: EmulatorServer) -> AsyncIterator[httpx.AsyncClient]:
    """A raw client authenticated with the emulator's token."""
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=emu.url, headers=headers) as client:
        yield client


async def test_auth__missing_and_wrong_tokens_are_401(emu: EmulatorServer) -> None:
    async with httpx.AsyncClient(base_url=emu.url) as client:
        missing = await client.get(f"/repos/{REPO}")
        wrong = await client.get(f"/repos/{REPO}", headers={"authorization": "Bearer nope"})
        classic = await client.get(f"/repos/{REPO}", headers={"authorization": f"token {TOKEN}"})
    assert missing.status_code == 401
    assert missing.json()["message"] == "Requires authentication"
    assert wrong.status_code == 401
    assert wrong.json()["message"] == "Bad credentials"
    assert "documentation_url" in wrong.json()
    assert classic.status_code == 200
    for response in (missing, wrong, classic):
        assert response.headers["x-ratelimit-resource"] == "core"


async def test_rate_limit_headers__count_down_per_request(api: httpx.AsyncClient) -> None:
    first = await api.get(f"/repos/{REPO}")
    second = await api.get(f"/repos/{REPO}")
    assert first.headers["x-ratelimit-limit"] == "5000"
    assert int(first.headers["x-ratelimit-remaining"]) - 1 == int(
        second.headers["x-ratelimit-remaining"]
    )
    assert int(second.headers["x-ratelimit-used"]) == 2
    assert int(second.headers["x-ratelimit-reset"]) > 0


async def test_rate_limit__exhausted_budget_is_403_with_remaining_zero() -> None:
    async with EmulatorServer(EmulatorConfig(rate_limit=2), token=TOKEN) as emu:
        await emu.admin.create_repo(REPO)
        headers = {"authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=emu.url, headers=headers) as api:
            answers = [await api.get(f"/repos/{REPO}") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 403]
    assert answers[2].headers["x-ratelimit-remaining"] == "0"
    assert "API rate limit exceeded" in answers[2].json()["message"]


async def test_repo__get_and_ghes_prefix_share_a_counter(
    emu: EmulatorServer, api: httpx.AsyncClient
) -> None:
    plain = await api.get(f"/repos/{REPO}")
    ghes = await api.get(f"/api/v3/repos/{REPO}")
    missing = await api.get("/repos/octo/nothing")
    assert plain.json() == ghes.json()
    assert plain.json()["full_name"] == REPO
    assert plain.json()["default_branch"] == "main"
    assert plain.json()["owner"]["login"] == "octo"
    assert missing.status_code == 404
    assert missing.json()["message"] == "Not Found"
    assert (await emu.admin.counters()).get("GET", "/repos/{owner}/{repo}") == 3


async def test_unknown_route__is_github_json_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/repos/octo/demo/nonsense/1")
    assert response.status_code == 404
    assert response.json()["message"] == "Not Found"


async def test_comment__created_with_bot_author(
    emu: EmulatorServer, api: httpx.AsyncClient
) -> None:
    number = await emu.admin.create_issue(REPO, "Bug", author="alice")
    response = await api.post(f"/repos/{REPO}/issues/{number}/comments", json={"body": "hi"})
    assert response.status_code == 201
    comment = response.json()
    assert comment["body"] == "hi"
    assert comment["user"] == {**comment["user"], "login": BOT, "type": "Bot"}
    assert comment["html_url"].endswith(f"/issues/{number}#issuecomment-{comment['id']}")
    assert comment["issue_url"].endswith(f"/repos/{REPO}/issues/{number}")
    assert {"id", "node_id", "created_at", "updated_at"} <= comment.keys()
    assert (await emu.admin.comments(REPO, number))[0].author == BOT


async def test_comment__missing_issue_404_and_empty_body_422(
    emu: EmulatorServer, api: httpx.AsyncClient
) -> None:
    number = await emu.admin.create_issue(REPO, "Bug")
    missing = await api.post(f"/repos/{REPO}/issues/999/comments", json={"body": "hi"})
    empty = await api.post(f"/repos/{REPO}/issues/{number}/comments", json={"body": ""})
    too_long = await api.post(f"/repos/{REPO}/issues/{number}/comments", json={"body": "x" * 65537})
    not_json = await api.post(f"/repos/{REPO}/issues/{number}/comments", content=b"{")
    assert missing.status_code == 404
    assert empty.status_code == 422
    assert empty.json()["errors"][0]["field"] == "body"
    assert too_long.status_code == 422
    assert "too long" in too_long.json()["errors"][0]["message"]
    assert not_json.status_code == 400
    assert not_json.json()["message"] == "Problems parsing JSON"


async def test_comments__paginate_with_link_header(
    emu: EmulatorServer, api: httpx.AsyncClient
) -> None:
    number = await emu.admin.create_issue(REPO, "Bug")
    for i in range(65):
        await api.post(f"/repos/{REPO}/issues/{number}/comments", json={"body": f"c{i}"})
    path = f"/repos/{REPO}/issues/{number}/comments"

    first = await api.get(path)
    assert len(first.json()) == 30
    assert set(first.links) == {"next", "last"}
    assert "page=3" in first.links["last"]["url"]

    middle = await api.get(first.links["next"]["url"])
    assert set(middle.links) == {"prev", "next", "last", "first"}
    assert middle.json()[0]["body"] == "c30"

    last = await api.get(first.links["last"]["url"])
    assert [c["body"] for c in last.json()] == [f"c{i}" for i in range(60, 65)]
    assert set(last.links) == {"prev", "first"}

    capped = await api.get(path, params={"per_page": 500})
    beyond = await api.get(path, params={"page": 9})
    assert len(capped.json()) == 65  # per_page is capped at 100, all fit
    assert "link" not in capped.headers
    assert beyond.json() == []


async def test_labels__add_is_idempotent_and_case_insensitive(
    emu: EmulatorServer, api: httpx.AsyncClient
) -> None:
    number = await emu.admin.create_issue(REPO, "Bug")
    path = f"/repos/{REPO}/issues/{number}/labels"
    first = await api.post(path, json={"labels": ["agent", "area/forge"]})
    again = await api.post(path, json={"labels": ["Agent"]})
    plain_list = await api.post(path, json=["agent-planned"])
    assert first.status_code == 200
    assert [label["name"] for label in first.json()] == ["agent", "area/forge"]
    assert [label["name"] for label in again.json()] == ["agent", "area/forge"]
    assert {"id", "node_id", "color", "url"} <= first.json()[0].keys()
    assert await emu.admin.labels(REPO, number) == ["agent", "area/forge", "agent-planned"]
    assert [label["name"] for label in plain_list.json()][-1] == "agent-planned"


async def test_labels__delete_absent_label_and_missing_issue_are_distinct_404s(
    emu: EmulatorServer, api: httpx.AsyncClient
) -> None:
    number = await emu.admin.create_issue(REPO, "Bug", labels=["agent", "area/forge"])
    removed = await api.delete(f"/repos/{REPO}/issues/{number}/labels/area%2Fforge")
    absent = await api.delete(f"/repos/{REPO}/issues/{number}/labels/area%2Fforge")
    missing = await api.delete(f"/repos/{REPO}/issues/404/labels/agent")
    assert removed.status_code == 200
    assert [label["name"] for label in removed.json()] == ["agent"]
    assert absent.status_code == 404
    assert absent.json()["message"] == "Label does not exist"
    assert missing.status_code == 404
    assert missing.json()["message"] == "Not Found"


async def test_pulls__create_shares_issue_numbers_and_refuses_duplicates(
    emu: EmulatorServer, api: httpx.AsyncClient
) -> None:
    issue = await emu.admin.create_issue(REPO, "Bug")
    body = {"title": "Fix", "head": "agent/issue-1", "base": "main", "body": f"Closes #{issue}"}
    created = await api.post(f"/repos/{REPO}/pulls", json=body)
    duplicate = await api.post(f"/repos/{REPO}/pulls", json=body)
    assert created.status_code == 201
    pr = created.json()
    assert pr["number"] == issue + 1
    assert (pr["state"], pr["merged"], pr["head"]["ref"]) == ("open", False, "agent/issue-1")
    assert pr["head"]["label"] == "octo:agent/issue-1"
    assert pr["base"]["ref"] == "main"
    assert pr["user"]["login"] == BOT
    assert duplicate.status_code == 422
    assert duplicate.json()["message"] == "Validation Failed"
    assert duplicate.json()["errors"] == [
        {
            "resource": "PullRequest",
            "code": "custom",
            "message": "A pull request already exists for octo:agent/issue-1.",
        }
    ]
    as_issue = await api.get(f"/repos/{REPO}/issues/{pr['number']}")
    assert "pull_request" in as_issue.json()
    assert (await api.get(f"/repos/{REPO}/pulls/{issue}")).status_code == 404


async def test_pulls__list_filters_like_github(emu: EmulatorServer, api: httpx.AsyncClient) -> None:
    for branch in ("a", "b"):
        body = {"title": branch, "head": branch, "base": "main"}
        assert (await api.post(f"/repos/{REPO}/pulls", json=body)).status_code == 201
    by_head = await api.get(f"/repos/{REPO}/pulls", params={"head": "octo:a", "state": "all"})
    unprefixed = await api.get(f"/repos/{REPO}/pulls", params={"head": "a"})
    closed = await api.get(f"/repos/{REPO}/pulls", params={"state": "closed"})
    assert [p["head"]["ref"] for p in by_head.json()] == ["a"]
    assert "merged" not in by_head.json()[0]  # list items only carry merged_at
    # GitHub ignores a head filter without "owner:" and returns everything.
    assert [p["head"]["ref"] for p in unprefixed.json()] == ["b", "a"]
    assert closed.json() == []


async def test_merge__closes_linked_issue_and_cannot_repeat(
    emu: EmulatorServer, api: httpx.AsyncClient
) -> None:
    issue = await emu.admin.create_issue(REPO, "Bug")
    body = {"title": "Fix", "head": "fix", "base": "main", "body": f"Closes #{issue}"}
    number = (await api.post(f"/repos/{REPO}/pulls", json=body)).json()["number"]
    merged = await api.put(f"/repos/{REPO}/pulls/{number}/merge")
    again = await api.put(f"/repos/{REPO}/pulls/{number}/merge")
    pr = (await api.get(f"/repos/{REPO}/pulls/{number}")).json()
    assert merged.status_code == 200
    assert merged.json()["merged"] is True
    assert again.status_code == 405
    assert (pr["state"], pr["merged"]) == ("closed", True)
    assert (await emu.admin.issue(REPO, issue)).state == "closed"


async def test_permission__roles_and_strangers(emu: EmulatorServer, api: httpx.AsyncClient) -> None:
    await emu.admin.set_permission(REPO, "mia", "maintain")
    await emu.admin.set_permission(REPO, "rita", "read")
    path = f"/repos/{REPO}/collaborators/{{}}/permission"
    owner = (await api.get(path.format("octo"))).json()
    mia = (await api.get(path.format("mia"))).json()
    rita = (await api.get(path.format("rita"))).json()
    stranger = (await api.get(path.format("mallory"))).json()
    assert (owner["permission"], owner["role_name"]) == ("admin", "admin")
    assert (mia["permission"], mia["role_name"]) == ("write", "maintain")
    assert (rita["permission"], rita["role_name"]) == ("read", "read")
    assert stranger["permission"] == "none"
    assert mia["user"]["login"] == "mia"


async def test_refs__create_duplicate_and_read_branch_with_slash(api: httpx.AsyncClient) -> None:
    sha = "a" * 40
    body = {"ref": "refs/heads/agent/issue-7", "sha": sha}
    created = await api.post(f"/repos/{REPO}/git/refs", json=body)
    duplicate = await api.post(f"/repos/{REPO}/git/refs", json=body)
    read = await api.get(f"/repos/{REPO}/git/ref/heads/agent/issue-7")
    missing = await api.get(f"/repos/{REPO}/git/ref/heads/nope")
    bad = await api.post(f"/repos/{REPO}/git/refs", json={"ref": "main", "sha": sha})
    assert created.status_code == 201
    assert duplicate.status_code == 422
    assert duplicate.json()["message"] == "Reference already exists"
    assert read.json()["object"]["sha"] == sha
    assert read.json()["ref"] == "refs/heads/agent/issue-7"
    assert missing.status_code == 404
    assert bad.status_code == 422


async def test_counters__keyed_by_route_template_and_resettable(
    emu: EmulatorServer, api: httpx.AsyncClient
) -> None:
    number = await emu.admin.create_issue(REPO, "Bug")
    await api.post(f"/repos/{REPO}/issues/{number}/comments", json={"body": "one"})
    await api.post(f"/repos/{REPO}/issues/{number}/comments", json={"body": ""})  # 422 counts
    counters = await emu.admin.counters()
    assert counters.requests == {COMMENTS: 2}
    assert counters.mutations == 2
    await emu.admin.reset_counters()
    assert (await emu.admin.counters()).requests == {}
