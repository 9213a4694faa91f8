"""Adapter edge cases against `httpx.MockTransport` (answers the emulator never gives)."""

from __future__ import annotations

import httpx
import pytest

from agent_workflow.core.errors import ForgeError, UncertainOutcome
from agent_workflow.forge.github import GitHubForge
from agent_workflow.forge.policy import RequestPolicy


def _forge(handler: httpx.MockTransport) -> GitHubForge:
    return GitHubForge.from_token(
        "t", base_url="https://ghe.example/api/v3", policy=RequestPolicy.fast(), transport=handler
    )


async def test_applied_but_unreadable_answer__is_uncertain() -> None:
    """A proxy that mangles a 201: GitHub applied it, we cannot know the id."""
    transport = httpx.MockTransport(lambda request: httpx.Response(201, text="<html>"))
    async with _forge(transport) as forge:
        with pytest.raises(UncertainOutcome):
            await forge.create_comment("o/r", 1, "x")


async def test_pagination_link_to_another_host__is_refused() -> None:
    """Following it would send our token to whoever wrote the header."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        link = '<https://evil.example/page2>; rel="next"'
        return httpx.Response(200, json=[], headers={"link": link})

    async with _forge(httpx.MockTransport(handler)) as forge:
        with pytest.raises(ForgeError, match="off-site"):
            await forge.list_comments("o/r", 1)
    assert seen == ["https://ghe.example/api/v3/repos/o/r/issues/1/comments?per_page=100"]


async def test_requests_carry_github_headers() -> None:
    captured: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        captured.append(request)
        return httpx.Response(200, json={"permission": "write", "role_name": "custom-role"})

    async with _forge(httpx.MockTransport(handler)) as forge:
        assert await forge.permission("o/r", "mia") == "write"  # custom role → `permission`
    headers = captured[0].headers
    assert headers["authorization"] == "Bearer t"
    assert headers["accept"] == "application/vnd.github+json"
    assert headers["x-github-api-version"] == "2022-11-28"
    assert headers["user-agent"].startswith("agent-workflow/")
