"""How many agent runs may go at once in one process: overall, and per repository.

A deployment does not use it: its runner holds every agent run in a slot leased in the
database, so `AW_MAX_AGENTS`/`AW_MAX_AGENTS_PER_REPO` hold across all workers
(`agent_workflow.core.limits`). This process-local fallback is for an agent driven
without a runner and its store (`run_phase` callers that pass one)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass
class RunLimiter:
    """Asyncio semaphores bounding concurrent agent runs in this process.

    A run waits for its repository's slot first and only then for a global
    one, so a busy repository never holds global slots while it queues. The
    limits are `AW_MAX_AGENTS` and `AW_MAX_AGENTS_PER_REPO` (defaults in `Settings`).
    A repository's semaphore lives only while a run holds or awaits it, so the map
    stays as small as the runs in flight, however many repositories pass.
    """

    max_runs: int
    max_runs_per_repo: int
    _global: asyncio.Semaphore = field(init=False, repr=False)
    # Each repository in use: its semaphore and how many runs hold or await it.
    _per_repo: dict[str, tuple[asyncio.Semaphore, int]] = field(
        default_factory=dict, init=False, repr=False
    )
    _running: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.max_runs < 1 or self.max_runs_per_repo < 1:
            raise ValueError("run limits must be at least 1")
        self._global = asyncio.Semaphore(self.max_runs)

    @property
    def running(self) -> int:
        """How many runs hold a slot right now."""
        return self._running

    @contextlib.asynccontextmanager
    async def slot(self, repo: str) -> AsyncIterator[None]:
        """Hold one slot for a run on `repo` (waits while the limits are reached)."""
        repo_sem, users = self._per_repo.get(repo, (asyncio.Semaphore(self.max_runs_per_repo), 0))
        self._per_repo[repo] = (repo_sem, users + 1)
        try:
            async with repo_sem, self._global:
                self._running += 1
                try:
                    yield
                finally:
                    self._running -= 1
        finally:
            repo_sem, users = self._per_repo[repo]
            if users == 1:
                del self._per_repo[repo]  # no run holds or awaits it: forget it
            else:
                self._per_repo[repo] = (repo_sem, users - 1)
