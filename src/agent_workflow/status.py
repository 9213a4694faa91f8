"""What `aw status` shows: tasks, their phases, leases and outstanding effects, and the
dead-lettered deliveries (routing failed `AW_MAX_ROUTE_ATTEMPTS` times)."""

from __future__ import annotations

from typing import Any

from agent_workflow.core.hooks import correlation_id
from agent_workflow.store import Store


async def collect_status(store: Store, now: float) -> list[dict[str, Any]]:
    """One entry per task with its phases and effects, as plain data."""
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
                }
            )
        effects = await store.effects.for_task(task.id)
        out.append(
            {
                "repo": task.repo,
                "issue": task.issue_number,
                "title": task.title,
                "pr_number": task.pr_number,
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
