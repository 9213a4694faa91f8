"""The job handler: what a queue job means, in terms of the router. Transport-free."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from agent_workflow.core.model import Event, Phase
from agent_workflow.core.router import Router
from agent_workflow.errors import BadEvent
from agent_workflow.ingress.events import Ignored, parse
from agent_workflow.service.jobs import PHASE, ROUTE
from agent_workflow.store.db import Store

log = structlog.get_logger(__name__)


class JobHandler:
    """Handles `route` and `phase` jobs; every path is safe to repeat (at-least-once queue)."""

    def __init__(self, store: Store, router: Router, clock: Callable[[], float]) -> None:
        self._store = store
        self._router = router
        self._clock = clock

    async def __call__(self, data: dict[str, Any]) -> None:
        """Handle one job payload."""
        match data.get("kind"):
            case "route":
                await self.route_delivery(str(data["delivery_id"]), str(data.get("hook_id", "")))
            case "phase":
                await self._router.resume(int(data["task_id"]), Phase(data["phase"]))
            case other:
                log.error("job.unknown_kind", kind=other, expected=(ROUTE, PHASE))

    async def route_delivery(self, delivery_id: str, hook_id: str) -> None:
        """Parse the stored delivery, route it, and mark it routed."""
        delivery = await self._store.deliveries.get(delivery_id, hook_id)
        if delivery is None:
            log.warning("route.unknown_delivery", delivery=delivery_id)
            return
        if delivery.routed_at is not None:
            return  # a duplicate job: the phases it started recover through the sweeper
        try:
            parsed = parse(delivery.event, delivery.payload, delivery.delivery_id)
        except BadEvent as exc:  # accepted earlier, so it parsed then; keep it visible
            await self._store.deliveries.note_failure(delivery_id, hook_id, str(exc))
            await self._store.deliveries.mark_routed(delivery_id, hook_id, self._clock())
            return
        if isinstance(parsed, Event):
            try:
                routed = await self._router.route(parsed)
            except Exception as exc:
                await self._store.deliveries.note_failure(delivery_id, hook_id, repr(exc))
                raise
            log.info(
                "route.done",
                delivery=delivery_id,
                action=routed.action,
                phase=routed.phase,
                status=routed.status,
                reason=routed.reason,
            )
        elif isinstance(parsed, Ignored):
            log.info("route.ignored", delivery=delivery_id, reason=parsed.reason)
        await self._store.deliveries.mark_routed(delivery_id, hook_id, self._clock())
