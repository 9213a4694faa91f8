"""Trust: who may drive phases, and the one permission cache (`AW_PERMISSION_TTL_S`)."""

from __future__ import annotations

import asyncio

from agent_workflow.config import Settings
from agent_workflow.core.trust import MAX_CACHED, Trust, is_bot
from agent_workflow.testing import MemoryForge
from tests.conftest import PERMISSION_TTL_S, FakeClock

REPO = "acme/widgets"


async def test_allows__write_and_above_only() -> None:
    forge = MemoryForge(permissions={"w": "write", "m": "maintain", "a": "admin", "t": "triage"})
    forge.default_permission = "read"
    trust = Trust(forge, FakeClock(), ttl_s=PERMISSION_TTL_S)
    assert [await trust.allows(REPO, u) for u in ("w", "m", "a", "t", "r")] == [
        True,
        True,
        True,
        False,
        False,
    ]


def test_permission_ttl__one_default_of_a_minute() -> None:
    """`AW_PERMISSION_TTL_S` defaults to 60 s: a revoked user acts for at most a minute."""
    assert Settings.model_fields["permission_ttl_s"].default == PERMISSION_TTL_S == 60.0


async def test_allows__answers_are_cached_for_the_ttl_then_asked_again() -> None:
    forge, clock = MemoryForge(permissions={"mia": "read"}), FakeClock()
    trust = Trust(forge, clock, ttl_s=PERMISSION_TTL_S)
    assert await trust.allows(REPO, "mia") is False
    forge.permissions["mia"] = "write"
    clock.advance(PERMISSION_TTL_S - 1.0)
    assert await trust.allows(REPO, "mia") is False  # still the cached answer
    clock.advance(2.0)
    assert await trust.allows(REPO, "mia") is True  # expired: asked again
    assert forge.calls["permission"] == 2


async def test_allows__concurrent_misses_share_one_lookup() -> None:
    forge = MemoryForge()
    trust = Trust(forge, FakeClock(), ttl_s=PERMISSION_TTL_S)
    answers = await asyncio.gather(*(trust.allows(REPO, "bob") for _ in range(10)))
    assert answers == [True] * 10
    assert forge.calls["permission"] == 1
    assert trust._pending == {}  # the shared lookup is forgotten once answered


async def test_allows__the_cache_is_bounded_oldest_out_first() -> None:
    """A flood of distinct actors keeps at most `max_cached` answers; the oldest go first
    (and expired ones at once), so a recent actor is still answered from the cache."""
    forge, clock = MemoryForge(), FakeClock()
    trust = Trust(forge, clock, ttl_s=PERMISSION_TTL_S, max_cached=3)
    for n in range(10):
        await trust.allows(REPO, f"user-{n}")
    assert list(trust._cache) == [(REPO, "user-7"), (REPO, "user-8"), (REPO, "user-9")]
    assert await trust.allows(REPO, "user-9") is True
    assert forge.calls["permission"] == 10  # user-9 came from the cache
    clock.advance(PERMISSION_TTL_S + 1)
    await trust.allows(REPO, "late")
    assert list(trust._cache) == [(REPO, "late")]  # the expired answers went with it
    assert 1_000 <= MAX_CACHED <= 100_000  # the deployment's bound: large, but a bound


def test_is_bot__apps_our_login_and_bot_suffix() -> None:
    assert is_bot("dependabot[bot]", False, own_login="")
    assert is_bot("ci", True, own_login="")
    assert is_bot("Agent-Workflow", False, own_login="agent-workflow")  # logins are case-blind
    assert is_bot("agent-workflow", False, own_login="agent-workflow")
    assert not is_bot("alice", False, own_login="agent-workflow")
