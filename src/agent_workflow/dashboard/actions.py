"""The dashboard's one kind of action, taken the way GitHub's own events are.

- **Retry** a blocked or failed phase: the dashboard stores the very `Event` a `/retry`
  comment would have produced (intent `retry`, the task's issue, the configured
  `AW_DASHBOARD_ACTOR` as its actor) as a delivery in the inbox and hands it to the
  queue. From there it is an ordinary delivery: the router checks the actor's
  permission, picks the phase from the task's state and starts the next attempt
  through the store's conditional retry (fenced, ledgered); the sweeper routes it if
  the queue drops it. A second click finds nothing blocked and does nothing.
- **Re-drive** a dead letter: its row is made routable again (`Deliveries.revive`) and
  its route job enqueued, as the sweeper would; it is routed as stored, by its own actor.

Dashboard deliveries are told apart by their hook id, `dashboard`: GitHub's hook ids
are digits (the ingress refuses anything else), so no webhook can pose as one.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from agent_workflow.core.model import Event, Intent, Phase, PhaseStatus
from agent_workflow.core.router import RETRY_ORDER
from agent_workflow.store import Store

log = structlog.get_logger(__name__)

Enqueue = Callable[[str, str], Awaitable[None]]
"""Hands a stored delivery (delivery id, hook id) to the queue, as the ingress does."""

DASHBOARD_HOOK = "dashboard"
DASHBOARD_EVENT = "dashboard"


def retryable(statuses: dict[str, str]) -> str | None:
    """The phase a `/retry` would start again (the latest of the lifecycle, if blocked or
    failed), or None; `statuses` maps phase names to stored statuses."""
    for phase in RETRY_ORDER:
        status = statuses.get(phase.value)
        if status is None:
            continue
        return phase.value if status in (PhaseStatus.BLOCKED, PhaseStatus.FAILED) else None
    return None


@dataclass(frozen=True)
class Actions:
    """Retry and re-drive, through the inbox and the queue."""

    store: Store
    enqueue: Enqueue
    actor: str  # AW_DASHBOARD_ACTOR; empty: no retry
    clock: Callable[[], float]

    async def retry(self, task_id: int, phase: Phase) -> str | None:
        """Store and enqueue the `/retry` event for the task; its delivery id, or None when
        there is no such task or no actor is configured."""
        task = await self.store.tasks.get(task_id)
        if task is None or not self.actor:
            return None
        delivery_id = f"dashboard-{uuid.uuid4()}"
        event = Event(
            delivery_id=delivery_id,
            intent=Intent.RETRY,
            repo=task.repo,
            issue_number=task.issue_number,
            actor=self.actor,
            clone_url=task.clone_url,
            default_branch=task.default_branch,
            repo_id=task.repo_id,
            installation_id=task.installation_id,
        )
        await self.store.deliveries.record(
            delivery_id=delivery_id,
            hook_id=DASHBOARD_HOOK,
            event=DASHBOARD_EVENT,
            action="retry",
            # What was asked, for the audit trail (routing reads only the parsed event).
            payload={"action": "retry", "task_id": task.id, "phase": phase.value},
            parsed=event,
            now=self.clock(),
        )
        log.info("dashboard.retry", task=task.id, phase=phase, delivery=delivery_id)
        await self._dispatch(delivery_id, DASHBOARD_HOOK)
        return delivery_id

    async def redrive(self, delivery_id: str, hook_id: str) -> bool:
        """Make a dead letter routable again and enqueue it; False if it is not dead."""
        if not await self.store.deliveries.revive(delivery_id, hook_id):
            return False
        log.info("dashboard.redrive", delivery=delivery_id, hook=hook_id)
        await self._dispatch(delivery_id, hook_id)
        return True

    async def _dispatch(self, delivery_id: str, hook_id: str) -> None:
        """Best effort, as in the ingress: the stored row is what the sweeper routes."""
        try:
            await self.enqueue(delivery_id, hook_id)
        except Exception as exc:
            log.warning(
                "dashboard.dispatch_failed",
                delivery=delivery_id,
                error=f"{type(exc).__name__}: {exc}",
            )
