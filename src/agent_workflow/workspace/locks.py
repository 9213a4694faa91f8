"""A lock per cached clone, held across the tasks of this process and across processes.

Fetches and worktree bookkeeping of one clone must not interleave (git
refuses concurrent ref updates with "cannot lock ref"). An `asyncio.Lock`
serialises this process; an `flock` on a file beside the clone serialises
workers that share the directory. The flock is polled without blocking, so
the event loop never waits on it. The kernel drops it when a holder dies.
The in-process lock of a clone lives only while someone holds or awaits it,
so the map stays as small as the work in flight, however many repositories pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path

# How often a waiter retries a flock held by another process.
_POLL_S = 0.05


class RepoLocks:
    """Named locks; `hold(path)` serialises work on the clone at `path`."""

    def __init__(self) -> None:
        """Create an empty set of locks."""
        # The lock of each clone in use, with how many tasks hold or await it.
        self._local: dict[Path, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, path: Path) -> AsyncIterator[None]:
        """Hold the lock for the clone at `path` (creates `<path>.lock` beside it)."""
        local, users = self._local.get(path, (asyncio.Lock(), 0))
        self._local[path] = (local, users + 1)
        try:
            async with local, self._flock(path):
                yield
        finally:
            local, users = self._local[path]
            if users == 1:
                del self._local[path]  # nobody holds or awaits it: forget it
            else:
                self._local[path] = (local, users - 1)

    @staticmethod
    @contextlib.asynccontextmanager
    async def _flock(path: Path) -> AsyncIterator[None]:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(_POLL_S)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock
