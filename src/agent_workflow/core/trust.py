"""Who may drive phases: never bots, only actors with write or admin permission."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from agent_workflow.core.ports import Forge, Permission

TRUSTED_PERMISSIONS = frozenset({"admin", "maintain", "write"})

# Answers kept at most: far more actors than act on a deployment's repositories within one
# TTL, so the steady state never evicts a live answer, while a flood of distinct
# (repo, actor) pairs costs a bounded amount of memory (about 2 MB).
MAX_CACHED = 10_000


def is_bot(actor: str, actor_is_bot: bool, own_login: str) -> bool:
    """Bots (GitHub apps, our own account) never drive phases. Logins are case-blind."""
    own = own_login.casefold()
    return actor_is_bot or actor.endswith("[bot]") or (bool(own) and actor.casefold() == own)


class Trust:
    """Checks an actor's repository permission (not `author_association`, which is unreliable).

    Answers are cached for `ttl_s` (`AW_PERMISSION_TTL_S`) so the steady state makes no reads;
    at most `max_cached` of them: the oldest goes first (with one TTL for all, the oldest
    stored is also the first to expire). Lookups in flight are forgotten once answered.
    """

    def __init__(
        self,
        forge: Forge,
        clock: Callable[[], float],
        *,
        ttl_s: float,
        max_cached: int = MAX_CACHED,
    ) -> None:
        self._forge = forge
        self._clock = clock
        self._ttl = ttl_s
        self._max_cached = max_cached
        self._cache: dict[tuple[str, str], tuple[bool, float]] = {}
        self._pending: dict[tuple[str, str], asyncio.Future[Permission]] = {}

    async def allows(self, repo: str, actor: str) -> bool:
        """True when `actor` has write, maintain or admin permission on `repo`."""
        key = (repo, actor)
        cached = self._cache.get(key)
        now = self._clock()
        if cached is not None and cached[1] > now:
            return cached[0]
        # Concurrent misses for one actor share one lookup (a burst of events).
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._forge.permission(repo, actor))
            self._pending[key] = pending
            pending.add_done_callback(lambda _: self._pending.pop(key, None))
        allowed = await asyncio.shield(pending) in TRUSTED_PERMISSIONS
        self._remember(key, allowed, now)
        return allowed

    def _remember(self, key: tuple[str, str], allowed: bool, now: float) -> None:
        """Store an answer as the newest; drop expired ones, and the oldest past the cap."""
        self._cache.pop(key, None)  # re-inserted last: insertion order is expiry order
        while self._cache:
            oldest = next(iter(self._cache))
            if self._cache[oldest][1] > now and len(self._cache) < self._max_cached:
                break
            del self._cache[oldest]
        self._cache[key] = (allowed, now + self._ttl)
