"""Trust: who may drive phases, and the one permission cache (`AW_PERMISSION_TTL_S`)."""

from __future__ import annotations

import asyncio

from agent_workflow.core.trust import Trust, is_bot
from agent_workflow.testing import MemoryForge
from tests.conftest import FakeClock

REPO = "acme/widgets"


async def test_allows__write_and_above_only() -> None:
    forge = MemoryForge(permissions={"w": "write", "m": "maintain", "a": "admin", "t": "triage"})
    forge.default_permission = "read"
    trust = Trust(forge, FakeClock(), ttl_s=300.0)
    assert [await trust.allows(REPO, u) for u in ("w", "m", "a", "t", "r")] == [
        True,
        True,
        True,
        False,
        False,
    ]


async def test_allows__answers_are_cached_for_the_ttl_then_asked_again() -> None:
    forge, clock = MemoryForge(permissions={"mia": "read"}), FakeClock()
    trust = Trust(forge, clock, ttl_s=300.0)
    assert await trust.allows(REPO, "mia") is False
    forge.permissions["mia"] = "write"
    clock.advance(299.0)
    assert await trust.allows(REPO, "mia") is False  # still the cached answer
    clock.advance(2.0)
    assert await trust.allows(REPO, "mia") is True  # expired: asked again
    assert forge.calls["permission"] == 2


async def test_allows__concurrent_misses_share_one_lookup() -> None:
    forge = MemoryForge()
    trust = Trust(forge, FakeClock(), ttl_s=300.0)
    answers = await asyncio.gather(*(trust.allows(REPO, "bob") for _ in range(10)))
    assert answers == [True] * 10
    assert forge.calls["permission"] == 1


def test_is_bot__apps_our_login_and_bot_suffix() -> None:
    assert is_bot("dependabot[bot]", False, own_login="")
    assert is_bot("ci", True, own_login="")
    assert is_bot("Agent-Workflow", False, own_login="agent-workflow")  # logins are case-blind
    assert is_bot("agent-workflow", False, own_login="agent-workflow")
    assert not is_bot("alice", False, own_login="agent-workflow")
