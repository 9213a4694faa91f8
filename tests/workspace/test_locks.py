"""RepoLocks: one holder per clone at a time, and a map no larger than the work in flight."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent_workflow.workspace.locks import RepoLocks


async def test_hold__serialises_holders_of_one_clone(tmp_path: Path) -> None:
    locks, inside, peak = RepoLocks(), 0, 0

    async def work() -> None:
        nonlocal inside, peak
        async with locks.hold(tmp_path / "repo.git"):
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.005)
            inside -= 1

    await asyncio.gather(*(work() for _ in range(5)))
    assert peak == 1


async def test_hold__forgets_a_clone_once_nobody_holds_or_awaits_it(tmp_path: Path) -> None:
    """Every clone ever locked would otherwise keep an entry for the life of the process."""
    locks = RepoLocks()
    for n in range(20):
        async with locks.hold(tmp_path / f"repo-{n}.git"):
            assert len(locks._local) == 1
    assert locks._local == {}

    clone = tmp_path / "busy.git"
    entered = asyncio.Event()

    async def holder() -> None:
        async with locks.hold(clone):
            entered.set()
            await asyncio.sleep(10)

    async def waiter() -> None:
        async with locks.hold(clone):
            pass

    held = asyncio.create_task(holder())
    await entered.wait()
    waiting = asyncio.create_task(waiter())
    await asyncio.sleep(0.01)
    assert locks._local[clone][1] == 2  # one holds it, one awaits it
    for task in (waiting, held):
        task.cancel()
    await asyncio.gather(waiting, held, return_exceptions=True)
    assert locks._local == {}
