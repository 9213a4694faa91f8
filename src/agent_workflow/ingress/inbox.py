"""Into the inbox: parse a delivery with the configured triggers and store it if absent.

The one path every delivery takes, whether it came as a webhook (`ingress.app`) or
was fetched from GitHub's hook-deliveries log (`service.backfill`): the same parse,
the same row, the same dedupe on (delivery id, hook id).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent_workflow.core.model import Event
from agent_workflow.ingress.events import Ignored, Triggers, may_be_repo_trigger, parse
from agent_workflow.ingress.installations import apply_installation, parse_installation
from agent_workflow.store import Store
from agent_workflow.telemetry import recorder


@dataclass(frozen=True)
class Duplicate:
    """The inbox already holds this delivery (or this body): nothing was stored."""


@dataclass(frozen=True)
class Deferred:
    """Stored without an event: our triggers make none of it, a repository's own could
    (`ingress.repo_triggers`). It is routed like an event; routing decides it."""

    reason: str


async def store_delivery(
    store: Store,
    triggers: Triggers,
    *,
    event: str,
    delivery_id: str,
    hook_id: str,
    payload: dict[str, Any],
    now: float,
    body_sha256: str | None = None,
    own_login: str = "",
) -> Event | Deferred | Ignored | Duplicate:
    """The stored `Event`, `Deferred` (stored, decided when routed), `Ignored` (nothing
    stored) or `Duplicate`.

    Raises `BadEvent` when a handled event lacks a field it needs, and the store's
    errors when the row cannot be written (nothing acknowledged then).
    """
    change = parse_installation(event, payload)
    if change is not None:  # applied now, not routed: see `ingress.installations`
        return Ignored(await apply_installation(store, change, now))
    parsed: Event | Ignored | Deferred = parse(event, payload, delivery_id, triggers)
    if isinstance(parsed, Ignored):
        if not may_be_repo_trigger(event, payload, own_login):
            return parsed
        parsed = Deferred(f"{parsed.reason}; the repository's triggers decide")
    action = payload.get("action")
    stored = await store.deliveries.record(
        delivery_id=delivery_id,
        hook_id=hook_id,
        event=event,
        action=action if isinstance(action, str) else "",
        payload=payload,
        parsed=parsed if isinstance(parsed, Event) else None,
        now=now,
        body_sha256=body_sha256,
    )
    recorder.delivery("received" if stored else "duplicate")
    return parsed if stored else Duplicate()
