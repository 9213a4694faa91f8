"""Redirects (a renamed or transferred repository) against `httpx.MockTransport`.

GitHub answers a moved repository's old URL with 301 for reads and 307 for other
methods. The adapter follows 301/302 for reads and 307/308 for any method (a 307 was
not processed, so resending the mutation cannot apply it twice), on our own host only
(the token never leaves it) and at most `MAX_REDIRECTS` times.
"""

from __future__ import annotations

import json

import httpx
import pytest

from agent_workflow.forge.github import GitHubForge
from agent_workflow.forge.http import MAX_REDIRECTS, RedirectRefused
from agent_workflow.forge.policy import RequestPolicy

BASE = "https://ghe.example/api/v3"
OLD = f"{BASE}/repos/o/old"
NEW = f"{BASE}/repos/o/new"

Seen = list[tuple[str, str, str, str | None]]


def _forge(handler: httpx.MockTransport) -> GitHubForge:
    return GitHubForge.from_token(
        "t", base_url=BASE, policy=RequestPolicy.fast(), transport=handler
    )


def _moved(seen: Seen, *, status: int, to: str = NEW) -> httpx.MockTransport:
    """The old name redirects (`status`) to `to`; the new name answers as GitHub would."""

    def handler(request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        body = request.content.decode() or None
        seen.append((request.method, url, request.headers.get("authorization", ""), body))
        if url.startswith(OLD):
            return httpx.Response(status, headers={"location": to + url.removeprefix(OLD)})
        if request.method == "POST":
            return httpx.Response(201, json={"id": 7})
        return httpx.Response(200, json=[{"id": 1, "body": "b", "user": {"login": "u"}}])

    return httpx.MockTransport(handler)


async def test_301_on_a_read__is_followed_to_the_new_name_with_the_query() -> None:
    seen: Seen = []
    async with _forge(_moved(seen, status=301)) as forge:
        [comment] = await forge.list_comments("o/old", 3)
        assert forge.stats.redirects == 1
    assert comment.id == 1
    assert [(m, u) for m, u, _, _ in seen] == [
        ("GET", f"{OLD}/issues/3/comments?per_page=100"),
        ("GET", f"{NEW}/issues/3/comments?per_page=100"),
    ]
    assert {auth for _, _, auth, _ in seen} == {"Bearer t"}


async def test_307_on_a_mutation__is_resent_once_with_the_same_method_and_body() -> None:
    seen: Seen = []
    async with _forge(_moved(seen, status=307)) as forge:
        assert await forge.create_comment("o/old", 3, "hello") == 7
        assert forge.stats.mutations == 2  # the first was not processed: spaced and counted
    assert [(m, u) for m, u, _, _ in seen] == [
        ("POST", f"{OLD}/issues/3/comments"),
        ("POST", f"{NEW}/issues/3/comments"),
    ]
    assert [json.loads(b or "null") for _, _, _, b in seen] == [{"body": "hello"}] * 2


async def test_301_on_a_mutation__is_not_followed() -> None:
    """A client turns a 301'd POST into a GET; GitHub answers mutations with 307."""
    seen: Seen = []
    async with _forge(_moved(seen, status=301)) as forge:
        with pytest.raises(RedirectRefused, match="not followed for a POST"):
            await forge.create_comment("o/old", 3, "hello")
    assert len(seen) == 1


@pytest.mark.parametrize("status", [301, 307])
async def test_redirect_to_another_host__is_refused_and_the_token_stays_home(status: int) -> None:
    seen: Seen = []
    elsewhere = "https://evil.example/api/v3/repos/o/new"
    async with _forge(_moved(seen, status=status, to=elsewhere)) as forge:
        request = (
            forge.list_comments("o/old", 3)
            if status == 301
            else forge.create_comment("o/old", 3, "hello")
        )
        with pytest.raises(RedirectRefused, match="off our host"):
            await request
    assert [u for _, u, _, _ in seen if "evil" in u] == []
    assert len(seen) == 1


async def test_redirect_loop__stops_after_the_hop_bound() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(301, headers={"location": f"{OLD}/issues/3/comments"})

    async with _forge(httpx.MockTransport(handler)) as forge:
        with pytest.raises(RedirectRefused, match=f"more than {MAX_REDIRECTS} redirects"):
            await forge.list_comments("o/old", 3)
    assert len(seen) == MAX_REDIRECTS + 1  # the request and each hop followed


async def test_chain_within_the_bound__is_followed() -> None:
    """A repository renamed twice, each hop on our host: within the bound, it arrives."""
    hops = [f"{BASE}/repos/o/mid", NEW]

    def handler(request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url.startswith(NEW):
            return httpx.Response(200, json={"object": {"sha": "abc"}})
        return httpx.Response(301, headers={"location": hops.pop(0) + "/git/ref/heads/x"})

    async with _forge(httpx.MockTransport(handler)) as forge:
        assert await forge.get_ref_sha("o/old", "refs/heads/x") == "abc"
        assert forge.stats.redirects == 2
