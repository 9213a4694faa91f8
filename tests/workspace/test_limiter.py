"""RunLimiter: at most N runs at once overall and M per repository."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from agent_workflow.workspace import RunLimiter


async def _run_all(limiter: RunLimiter, repos: list[str]) -> tuple[int, int]:
    """Run one short job per entry of `repos`; return (max overall, max per repo) at once."""
    running: Counter[str] = Counter()
    peak_total = peak_repo = 0

    async def job(repo: str) -> None:
        nonlocal peak_total, peak_repo
        async with limiter.slot(repo):
            running[repo] += 1
            peak_total = max(peak_total, sum(running.values()))
            peak_repo = max(peak_repo, running[repo])
            assert limiter.running == sum(running.values())
            await asyncio.sleep(0.01)
            running[repo] -= 1

    await asyncio.gather(*(job(r) for r in repos))
    return peak_total, peak_repo


async def test_limiter__bounds_overall_and_per_repository() -> None:
    limiter = RunLimiter(max_runs=3, max_runs_per_repo=2)
    repos = ["a/x"] * 6 + ["b/y"] * 6 + ["c/z"] * 6

    peak_total, peak_repo = await _run_all(limiter, repos)

    assert peak_total == 3
    assert peak_repo == 2
    assert limiter.running == 0


async def test_limiter__one_busy_repository_does_not_starve_the_others() -> None:
    """A repo waiting for its own slot holds no global slot meanwhile."""
    limiter = RunLimiter(max_runs=2, max_runs_per_repo=1)
    order: list[str] = []

    async def job(repo: str, hold: float) -> None:
        async with limiter.slot(repo):
            order.append(repo)
            await asyncio.sleep(hold)

    await asyncio.gather(job("a/x", 0.05), job("a/x", 0.05), job("a/x", 0.05), job("b/y", 0.0))

    assert order.index("b/y") == 1


async def test_limiter__a_cancelled_run_gives_its_slot_back() -> None:
    limiter = RunLimiter(max_runs=1, max_runs_per_repo=1)

    async def hold() -> None:
        async with limiter.slot("a/x"):
            await asyncio.sleep(60)

    task = asyncio.create_task(hold())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with asyncio.timeout(1), limiter.slot("a/x"):
        assert limiter.running == 1


def test_limiter__limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RunLimiter(max_runs=0, max_runs_per_repo=1)


async def test_limiter__forgets_a_repository_once_no_run_holds_or_awaits_it() -> None:
    """The per-repository map is bounded by the runs in flight, not by every repository
    ever seen: entries go when the last run ends, a waiter that is cancelled included."""
    limiter = RunLimiter(max_runs=1, max_runs_per_repo=1)
    assert await _run_all(limiter, [f"owner/repo-{n}" for n in range(50)]) == (1, 1)
    assert limiter._per_repo == {}

    holding = asyncio.Event()

    async def hold() -> None:
        async with limiter.slot("a/x"):
            holding.set()
            await asyncio.sleep(10)

    holder = asyncio.create_task(hold())
    await holding.wait()
    waiter = asyncio.create_task(_run_all(limiter, ["a/x"]))
    await asyncio.sleep(0.01)
    assert limiter._per_repo["a/x"][1] == 2  # one holds it, one awaits it
    for task in (waiter, holder):
        task.cancel()
    await asyncio.gather(waiter, holder, return_exceptions=True)
    assert limiter._per_repo == {}
