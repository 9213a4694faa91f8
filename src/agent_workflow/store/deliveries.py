"""The webhook inbox: durable before the 2xx, routed later (at least once)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_workflow.store.schema import deliveries
from agent_workflow.store.sql import insert_ignore


@dataclass(frozen=True)
class Delivery:
    """One received webhook delivery."""

    delivery_id: str
    hook_id: str
    event: str
    action: str
    payload: dict[str, Any]
    received_at: float
    routed_at: float | None
    route_attempts: int


class Deliveries:
    """SQL for the `deliveries` table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record(
        self,
        *,
        delivery_id: str,
        hook_id: str,
        event: str,
        action: str,
        payload: dict[str, Any],
        now: float,
    ) -> bool:
        """Insert if absent. True when this call stored it (a duplicate returns False)."""
        stmt = insert_ignore(
            self._engine,
            deliveries,
            delivery_id=delivery_id,
            hook_id=hook_id,
            event=event,
            action=action,
            payload=payload,
            received_at=now,
        ).returning(deliveries.c.id)
        async with self._engine.begin() as conn:
            return (await conn.execute(stmt)).first() is not None

    async def get(self, delivery_id: str, hook_id: str = "") -> Delivery | None:
        """The stored delivery, or None."""
        stmt = select(deliveries).where(
            deliveries.c.delivery_id == delivery_id, deliveries.c.hook_id == hook_id
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt)).mappings().first()
        return _delivery(row) if row else None

    async def mark_routed(self, delivery_id: str, hook_id: str, now: float) -> None:
        """Record that routing finished (idempotent)."""
        stmt = (
            update(deliveries)
            .where(deliveries.c.delivery_id == delivery_id, deliveries.c.hook_id == hook_id)
            .where(deliveries.c.routed_at.is_(None))
            .values(routed_at=now)
        )
        async with self._engine.begin() as conn:
            await conn.execute(stmt)

    async def note_failure(self, delivery_id: str, hook_id: str, error: str) -> None:
        """Count a failed routing attempt; the sweeper will try again."""
        stmt = (
            update(deliveries)
            .where(deliveries.c.delivery_id == delivery_id, deliveries.c.hook_id == hook_id)
            .values(route_attempts=deliveries.c.route_attempts + 1, last_error=error[:2000])
        )
        async with self._engine.begin() as conn:
            await conn.execute(stmt)

    async def unrouted(self, received_before: float, limit: int = 100) -> list[Delivery]:
        """Deliveries accepted but not routed yet, oldest first."""
        stmt = (
            select(deliveries)
            .where(deliveries.c.routed_at.is_(None), deliveries.c.received_at < received_before)
            .order_by(deliveries.c.received_at)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [_delivery(r) for r in rows]


def _delivery(row: Any) -> Delivery:
    return Delivery(
        delivery_id=row["delivery_id"],
        hook_id=row["hook_id"],
        event=row["event"],
        action=row["action"],
        payload=row["payload"],
        received_at=row["received_at"],
        routed_at=row["routed_at"],
        route_attempts=row["route_attempts"],
    )
