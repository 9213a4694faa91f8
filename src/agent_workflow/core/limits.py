"""Deployment-wide limits on agents: how many run at once, and what a UTC day may spend.

- Slots (`AW_MAX_AGENTS`, `AW_MAX_AGENTS_PER_REPO`): an agent runs only while its worker
  holds a slot leased in the database (`AgentSlots`), so the caps hold across every
  worker. A worker that finds them reached waits politely (polls with a growing pause,
  cancellable) under its phase lease; the slot's lease is renewed while the agent runs
  and the slot is released when the run ends or is cancelled. A dead worker's slot
  frees itself when its lease passes.
- Daily budget (`AW_DAILY_BUDGET_USD`): once the deployment's spending since 00:00 UTC
  has reached it, no agent starts: the phase is left (or created) pending, nothing is
  claimed and no lease is held, `aw status` says why, and the sweeper dispatches it
  again once the day has rolled over. Runs already going are not stopped (each is
  bounded by its phase and task budgets), so a day may end a little above the cap.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import structlog

from agent_workflow.core.ports import AgentSlots, Clock, Spending

log = structlog.get_logger(__name__)

DAY_S = 86_400.0
"""A UTC day: epoch seconds count UTC days exactly (no leap seconds), so `now % DAY_S`
is the time since 00:00 UTC."""
SLOT_POLL_MIN_S = 0.25
"""First pause before asking for a slot again: a slot freed by a short run is taken soon."""
SLOT_POLL_MAX_S = 5.0
"""The pause doubles up to this: a long wait costs one statement per waiting run every 5 s,
and a freed slot idles at most this long."""


@dataclass(frozen=True)
class AgentLimits:
    """The deployment's caps; the values (and why) are in `Settings`."""

    max_agents: int  # agent runs at once, across every worker
    max_agents_per_repo: int  # of which on one repository
    daily_budget_usd: float | None  # spending per UTC day (None: no cap)


def day_start(now: float) -> float:
    """00:00 UTC of the day `now` falls in."""
    return now - now % DAY_S


@dataclass(frozen=True)
class BudgetReached:
    """The daily budget is spent: new agent runs wait until `resumes_at`."""

    spent_usd: float
    budget_usd: float
    resumes_at: float  # the next 00:00 UTC

    def describe(self) -> str:
        """The reason `aw status` and the logs show."""
        return (
            f"waiting: the daily budget (AW_DAILY_BUDGET_USD ${self.budget_usd:.2f}) is spent"
            f" (${self.spent_usd:.2f} since 00:00 UTC); starts after the day rolls over"
        )


async def budget_reached(
    spending: Spending, budget_usd: float | None, now: float
) -> BudgetReached | None:
    """`BudgetReached` when today's spending is at or past `budget_usd`, else None."""
    if budget_usd is None:
        return None
    start = day_start(now)
    spent = await spending.spent_since(start)
    if spent < budget_usd:
        return None
    return BudgetReached(spent, budget_usd, start + DAY_S)


@dataclass(frozen=True)
class SlotRequest:
    """One agent run asking for a slot."""

    repo: str
    holder: str
    phase_run_id: int
    lease_s: float
    heartbeat_s: float


async def take_slot(
    slots: AgentSlots, limits: AgentLimits, want: SlotRequest, clock: Clock, *, wait: bool
) -> int | None:
    """A slot id; None when `wait` is false and the caps are reached. Waiting polls with
    a growing pause until a slot is free (cancel it to stop)."""
    pause = SLOT_POLL_MIN_S
    while True:
        slot = await slots.acquire(
            want.repo,
            want.holder,
            phase_run_id=want.phase_run_id,
            max_total=limits.max_agents,
            max_per_repo=limits.max_agents_per_repo,
            lease_s=want.lease_s,
            now=clock(),
        )
        if slot is not None or not wait:
            return slot
        await asyncio.sleep(pause)
        pause = min(2 * pause, SLOT_POLL_MAX_S)


@contextlib.asynccontextmanager
async def holding(
    slots: AgentSlots, slot_id: int, want: SlotRequest, clock: Clock
) -> AsyncIterator[None]:
    """Keep `slot_id` leased (renewed every heartbeat) for the block; release it after,
    also when the block is cancelled or raises."""
    renewer = asyncio.create_task(_renew(slots, slot_id, want, clock))
    try:
        yield
    finally:
        renewer.cancel()
        await asyncio.gather(renewer, return_exceptions=True)
        with contextlib.suppress(Exception):  # a failed release expires with its lease
            await asyncio.shield(slots.release(slot_id, clock()))


async def _renew(
    slots: AgentSlots, slot_id: int, want: SlotRequest, clock: Callable[[], float]
) -> None:
    while True:
        await asyncio.sleep(want.heartbeat_s)
        try:
            if not await slots.renew(slot_id, want.lease_s, clock()):
                # Its lease passed (this process was frozen): another run may have its place.
                log.warning("agent.slot_expired", slot=slot_id, repo=want.repo)
                return
        except Exception:  # a database blip: the next beat tries again
            log.exception("agent.slot_renew_failed", slot=slot_id)
