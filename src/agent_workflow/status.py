"""What `aw status` shows: tasks, their phases, leases and outstanding effects, and the
dead-lettered deliveries (routing failed `AW_MAX_ROUTE_ATTEMPTS` times), and the
deployment's limits: today's spending against `AW_DAILY_BUDGET_USD` and the agent slots
in use. A phase that may start but waits for the daily budget says so (`waiting`)."""

from __future__ import annotations

from typing import Any

from agent_workflow.core.hooks import correlation_id
from agent_workflow.core.limits import budget_reached, day_start
from agent_workflow.core.recovery import RecoveryPoint, recovery_point
from agent_workflow.store import Store


async def collect_status(
    store: Store, now: float, daily_budget_usd: float | None
) -> list[dict[str, Any]]:
    """One entry per task with its phases and effects, as plain data."""
    reached = await budget_reached(store.usage, daily_budget_usd, now)
    out: list[dict[str, Any]] = []
    for task in await store.tasks.all():
        phases = []
        for run in await store.phases.for_task(task.id):
            lease_left = None if run.lease_until is None else round(run.lease_until - now, 1)
            phases.append(
                {
                    "phase": run.phase.value,
                    "status": run.status.value,
                    "attempt": run.attempt,
                    "fence": run.fence,
                    "lease_owner": run.lease_owner,
                    "lease_seconds_left": lease_left,
                    "session_id": run.session_id,
                    "cost_usd": round(run.cost_usd, 4),
                    "turns": run.turns,
                    "effects_done": run.effects_done,
                    "blocked_reason": run.blocked_reason,
                    "correlation": correlation_id(run),  # what its public comment shows
                    # Why a phase that may start has not: the daily budget is spent.
                    "waiting": (
                        reached.describe()
                        if reached and recovery_point(run, now) is RecoveryPoint.CLAIMABLE
                        else None
                    ),
                }
            )
        effects = await store.effects.for_task(task.id)
        out.append(
            {
                "repo": task.repo,
                "issue": task.issue_number,
                "title": task.title,
                "pr_number": task.pr_number,
                "installation_id": task.installation_id,
                # Why nothing runs for it (installation suspended or deleted, repository
                # removed from the installation); None while it may run.
                "held": task.held_reason,
                "phases": phases,
                "effects_done": sum(1 for e in effects if e.status.value == "done"),
                "effects_outstanding": [e.key for e in effects if e.status.value == "started"],
                "effects_refused": [e.key for e in effects if e.status.value == "refused"],
            }
        )
    return out


async def collect_dead_letters(store: Store, latest: int = 5) -> dict[str, Any]:
    """How many deliveries are dead-lettered, and the latest few with their last error."""
    count, rows = await store.deliveries.dead_letters(latest)
    return {
        "count": count,
        "latest": [
            {
                "delivery_id": d.delivery_id,
                "hook_id": d.hook_id,
                "event": d.event,
                "action": d.action,
                "attempts": d.route_attempts,
                "dead_at": d.dead_at,
                "last_error": (d.last_error or "")[:300],
            }
            for d in rows
        ],
    }


async def collect_limits(
    store: Store, now: float, daily_budget_usd: float | None
) -> dict[str, Any]:
    """Today's spending against the daily budget, and the live agent slots."""
    spent = await store.usage.spent_since(day_start(now))
    reached = await budget_reached(store.usage, daily_budget_usd, now)
    return {
        "daily_budget_usd": daily_budget_usd,
        "spent_today_usd": round(spent, 4),
        "waiting_for_budget": reached is not None,
        "slots": [
            {
                "repo": slot.repo,
                "holder": slot.holder,
                "phase_run_id": slot.phase_run_id,
                "held_s": round(now - slot.acquired_at, 1),
            }
            for slot in await store.slots.in_use(now)
        ],
    }


async def collect_installations(store: Store) -> list[dict[str, Any]]:
    """GitHub App installations suspended or deleted: their events start nothing."""
    return [
        {"installation_id": ident, "account": account, "state": state, "since": since}
        for ident, account, state, since in await store.installations.inactive()
    ]
