"""A lock per cached clone, held across the tasks of this process and across processes.

Fetches and worktree bookkeeping of one clone must not interleave (git
refuses concurrent ref updates with "cannot lock ref"). An `asyncio.Lock`
serialises this process; an `flock` on a file beside the clone serialises
workers that share the directory. The flock is polled without blocking, so
the event loop never waits on it. The kernel drops it when a holder dies.
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
        self._local: dict[Path, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def hold(self, path: Path) -> AsyncIterator[None]:
        """Hold the lock for the clone at `path` (creates `<path>.lock` beside it)."""
        local = self._local.setdefault(path, asyncio.Lock())
        async with local:
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
