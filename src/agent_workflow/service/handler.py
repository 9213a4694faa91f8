"""The job handler: what a queue job means, in terms of the router. Transport-free.

A `route` job routes the `Event` the ingress parsed and stored with the delivery;
the payload is not read, let alone parsed again, so the triggers the delivery was
accepted with are the ones it is routed with — unless its repository names its own issue
triggers (`ingress.repo_triggers`): a label or issue command is then decided with those,
from the stored payload. This is the hot path of a duplicate storm: one narrow read, then
(unless it was routed already) the final `mark_routed`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol

import structlog

from agent_workflow.core.errors import BadEvent, PhaseBusy
from agent_workflow.core.model import Event, IssueState, Phase
from agent_workflow.core.routed import Routed
from agent_workflow.core.router import UNREAD, Unread
from agent_workflow.ingress.events import Ignored, parse
from agent_workflow.ingress.repo_triggers import RepoTriggers
from agent_workflow.service.jobs import PHASE, ROUTE
from agent_workflow.store.db import Store
from agent_workflow.telemetry import recorder, tracing

log = structlog.get_logger(__name__)


class EventRouter(Protocol):
    """What the handler asks of the core's `Router`."""

    async def route(
        self, event: Event, state: IssueState | Literal[Unread.UNREAD] | None = UNREAD
    ) -> Routed:
        """Handle one parsed event (with its issue's state, if read along with it)."""
        ...

    async def resume(self, task_id: int, phase: Phase) -> Routed:
        """Drive one phase from its recovery point."""
        ...


class JobHandler:
    """Handles `route` and `phase` jobs; every path is safe to repeat (at-least-once queue).

    `triggers` holds the deployment's triggers (from `Settings`, the same value the ingress
    parses with) narrowed by each repository's settings: a stored issue trigger, and a
    delivery kept without an event (`parsed` NULL), are decided with its repository's.
    A delivery whose
    routing failed `max_route_attempts` times (`AW_MAX_ROUTE_ATTEMPTS`) is dead-lettered:
    its jobs do nothing and the sweeper no longer re-enqueues it (`aw status` shows it).
    """

    def __init__(
        self,
        store: Store,
        router: EventRouter,
        clock: Callable[[], float],
        *,
        triggers: RepoTriggers,
        max_route_attempts: int,
    ) -> None:
        self._store = store
        self._router = router
        self._clock = clock
        self._triggers = triggers
        self._max_route_attempts = max_route_attempts

    async def __call__(self, data: dict[str, Any]) -> None:
        """Handle one job payload, on one database connection for all its statements."""
        async with self._store.hold():
            await self._handle(data)

    async def _handle(self, data: dict[str, Any]) -> None:
        match data.get("kind"):
            case "route":
                delivery_id = str(data["delivery_id"])
                # A child of the webhook's span when the job carries its `traceparent`.
                with tracing.route_span(data, delivery_id) as span:
                    await self.route_delivery(delivery_id, str(data.get("hook_id", "")), span=span)
            case "phase":
                task_id, phase = int(data["task_id"]), Phase(data["phase"])
                with tracing.resume_span(task_id, phase.value):
                    await self._router.resume(task_id, phase)
            case other:
                log.error("job.unknown_kind", kind=other, expected=(ROUTE, PHASE))

    async def route_delivery(
        self, delivery_id: str, hook_id: str, *, span: tracing.TraceSpan = tracing.NO_SPAN
    ) -> None:
        """Route the stored delivery's parsed event and mark it routed; `span` is told
        its intent and what routing did."""
        try:
            parsed, state = await self._stored_event(delivery_id, hook_id)
        except BadEvent as exc:  # accepted earlier, so it parsed then; keep it visible
            await self._note_failure(delivery_id, hook_id, str(exc))
            await self._store.deliveries.mark_routed(delivery_id, hook_id, self._clock())
            return
        if parsed is None:
            return
        if isinstance(parsed, Event):
            span.set("route.intent", parsed.intent.value)
            try:
                routed = await self._router.route(parsed, state)
            except PhaseBusy as exc:
                # Not a failure (never dead-lettered for it): the event waits for a phase or
                # a round to settle, which its lease bounds. The queue retries the job, and
                # the sweeper routes the still-unrouted delivery again after that.
                log.info("route.busy", delivery=delivery_id, reason=str(exc))
                raise
            except Exception as exc:
                await self._note_failure(delivery_id, hook_id, repr(exc))
                raise
            span.set("route.action", routed.action.value)
            log.info(
                "route.done",
                delivery=delivery_id,
                action=routed.action,
                phase=routed.phase,
                status=routed.status,
                reason=routed.reason,
            )
        else:
            span.set("route.action", "ignored")
            log.info("route.ignored", delivery=delivery_id, reason=parsed.reason)
        await self._store.deliveries.mark_routed(delivery_id, hook_id, self._clock())

    async def _note_failure(self, delivery_id: str, hook_id: str, error: str) -> None:
        dead = await self._store.deliveries.note_failure(
            delivery_id,
            hook_id,
            error,
            now=self._clock(),
            max_attempts=self._max_route_attempts,
        )
        if dead:
            recorder.dead_lettered()
            log.error(
                "route.dead_lettered",
                delivery=delivery_id,
                attempts=self._max_route_attempts,
                error=error[:500],
            )

    async def _stored_event(
        self, delivery_id: str, hook_id: str
    ) -> tuple[Event | Ignored | None, IssueState | Literal[Unread.UNREAD] | None]:
        """The event to route (None: nothing to do) and its issue's state, if read along
        with it (one round trip). Raises `BadEvent`."""
        row = await self._store.deliveries.to_route(delivery_id, hook_id)
        if row is None:
            log.warning("route.unknown_delivery", delivery=delivery_id)
            return None, UNREAD
        if row.routed_at is not None:
            # A duplicate job: the phases it started recover through the sweeper.
            return None, UNREAD
        if row.dead_at is not None:  # dead-lettered: never retried automatically
            log.warning("route.dead_letter_skipped", delivery=delivery_id)
            return None, UNREAD
        if row.received_at is not None:
            recorder.routing_started(self._clock() - row.received_at)
        stored = row.parsed
        if not self._triggers.decides(row.event, stored):
            return stored, row.state
        triggers = None
        if stored is not None:
            triggers = await self._triggers.for_repo(stored.repo, stored.default_branch)
            if triggers == self._triggers.deployment:  # as accepted: no re-parse
                return stored, row.state
        # Kept for its repository's triggers, or they differ from ours: decide it with them.
        payload = await self._store.deliveries.payload(delivery_id, hook_id)
        if payload is None:  # pragma: no cover - the row was there a moment ago
            return None, UNREAD
        if triggers is not None:
            return parse(row.event, payload, delivery_id, triggers), UNREAD
        return await self._triggers.parse(row.event, payload, delivery_id), UNREAD
