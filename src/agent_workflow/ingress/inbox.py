"""Into the inbox: parse a delivery with the configured triggers and store it if absent.

The one path every delivery takes, whether it came as a webhook (`ingress.app`) or
was fetched from GitHub's hook-deliveries log (`service.backfill`): the same parse,
the same row, the same dedupe on (delivery id, hook id).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent_workflow.core.model import Event
from agent_workflow.ingress.events import Ignored, Triggers, parse
from agent_workflow.ingress.installations import apply_installation, parse_installation
from agent_workflow.store import Store


@dataclass(frozen=True)
class Duplicate:
    """The inbox already holds this delivery (or this body): nothing was stored."""


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
) -> Event | Ignored | Duplicate:
    """The stored `Event`, `Ignored` (nothing stored) or `Duplicate`.

    Raises `BadEvent` when a handled event lacks a field it needs, and the store's
    errors when the row cannot be written (nothing acknowledged then).
    """
    change = parse_installation(event, payload)
    if change is not None:  # applied now, not routed: see `ingress.installations`
        return Ignored(await apply_installation(store, change, now))
    parsed = parse(event, payload, delivery_id, triggers)
    if isinstance(parsed, Ignored):
        return parsed
    action = payload.get("action")
    stored = await store.deliveries.record(
        delivery_id=delivery_id,
        hook_id=hook_id,
        event=event,
        action=action if isinstance(action, str) else "",
        payload=payload,
        parsed=parsed,
        now=now,
        body_sha256=body_sha256,
    )
    return parsed if stored else Duplicate()
