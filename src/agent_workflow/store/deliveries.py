"""The webhook inbox: durable before the 2xx, routed later (at least once).

Each row keeps the payload as sent and the `Event` the ingress parsed from it
(column `parsed`); routing reads the event, never the payload (`to_route`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, case, delete, func, or_, select, update

from agent_workflow.core.errors import BadEvent
from agent_workflow.core.model import Event, Intent, IssueState, RoundTrigger
from agent_workflow.store.connections import Database
from agent_workflow.store.phase_runs import ISSUE_COLUMNS, issue_state
from agent_workflow.store.schema import deliveries, phase_runs, tasks
from agent_workflow.store.sql import insert_ignore
from agent_workflow.store.tasks import same_issue

_EVENT_FIELDS = frozenset(f.name for f in dataclasses.fields(Event))
_THIS_DELIVERY = (  # (`p_` names: an UPDATE reserves the bare column names for its SET)
    deliveries.c.delivery_id == bindparam("p_delivery_id"),
    deliveries.c.hook_id == bindparam("p_hook_id"),
)
# The two statements of every route job (a duplicate storm's hot path), sent as they are.
# A route job's one read: the delivery's parsed event and, joined on the issue it names,
# that issue's task and phase runs — what the router's fast path decides from.
_TO_ROUTE = (
    select(
        deliveries.c.event,
        deliveries.c.routed_at,
        deliveries.c.dead_at,
        deliveries.c.parsed,
        deliveries.c.received_at,
        *ISSUE_COLUMNS,
    )
    .select_from(
        deliveries.outerjoin(
            tasks,
            same_issue(
                deliveries.c.parsed["repo"].as_string(),
                deliveries.c.parsed["repo_id"].as_integer(),
                deliveries.c.parsed["issue_number"].as_integer(),
            ),
        ).outerjoin(phase_runs, phase_runs.c.task_id == tasks.c.id)
    )
    .where(*_THIS_DELIVERY)
)
_MARK_ROUTED = (
    update(deliveries)
    .where(*_THIS_DELIVERY, deliveries.c.routed_at.is_(None))
    .values(routed_at=bindparam("p_now"))
)


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
    last_error: str | None = None
    dead_at: float | None = None  # set: dead-lettered, never retried automatically


@dataclass(frozen=True)
class ToRoute:
    """What routing needs of a stored delivery, and nothing more (no payload).

    `parsed` is None only for a row stored before the parsed event was; `event` (the
    `X-GitHub-Event` name) is there to parse such a row's payload once.
    """

    event: str
    routed_at: float | None
    parsed: Event | None
    # The issue's task and phases as read with the delivery (None: no task yet); only
    # meaningful with `parsed`.
    state: IssueState | None = None
    dead_at: float | None = None  # set: dead-lettered, not to be routed automatically
    received_at: float | None = None  # when the inbox stored it (routing latency)


class Deliveries:
    """SQL for the `deliveries` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self,
        *,
        delivery_id: str,
        hook_id: str,
        event: str,
        action: str,
        payload: dict[str, Any],
        parsed: Event | None,
        now: float,
        body_sha256: str | None = None,
    ) -> bool:
        """Insert if absent. True when this call stored it (a duplicate returns False).

        A duplicate is the same (delivery, hook) or the same `body_sha256` (the digest
        of the raw body) under any delivery id: a replayed body is never stored twice.
        `parsed` None: kept for a repository's own triggers to decide when it is routed.
        """
        stmt = insert_ignore(
            self._db.dialect,
            deliveries,
            delivery_id=delivery_id,
            hook_id=hook_id,
            event=event,
            action=action,
            payload=payload,
            parsed=None if parsed is None else event_to_json(parsed),
            received_at=now,
            body_sha256=body_sha256,
        ).returning(deliveries.c.id)
        async with self._db.begin() as conn:
            return (await conn.execute(stmt)).first() is not None

    async def get(self, delivery_id: str, hook_id: str = "") -> Delivery | None:
        """The stored delivery, or None."""
        stmt = select(deliveries).where(
            deliveries.c.delivery_id == delivery_id, deliveries.c.hook_id == hook_id
        )
        async with self._db.connect() as conn:
            row = (await conn.execute(stmt)).mappings().first()
        return _delivery(row) if row else None

    async def known(self, delivery_ids: Collection[str]) -> set[str]:
        """Which of `delivery_ids` the inbox holds, under any hook id (backfill's question:
        a GUID is unique across GitHub, and the App's log does not name the hook)."""
        if not delivery_ids:
            return set()
        stmt = select(deliveries.c.delivery_id).where(
            deliveries.c.delivery_id.in_(sorted(set(delivery_ids)))
        )
        async with self._db.connect() as conn:
            return set((await conn.execute(stmt)).scalars())

    async def to_route(self, delivery_id: str, hook_id: str) -> ToRoute | None:
        """The routing view of a stored delivery (one narrow read), or None.

        Raises `BadEvent` when the stored parsed event is not one this code can read.
        """
        rows = await self._db.fetch(_TO_ROUTE, p_delivery_id=delivery_id, p_hook_id=hook_id)
        if not rows:
            return None
        row = rows[0]
        parsed = None if row["parsed"] is None else event_from_json(row["parsed"])
        return ToRoute(
            row["event"],
            row["routed_at"],
            parsed,
            issue_state(rows),
            row["dead_at"],
            row["received_at"],
        )

    async def payload(self, delivery_id: str, hook_id: str) -> dict[str, Any] | None:
        """The stored payload (only rows without a parsed event need it), or None."""
        stmt = select(deliveries.c.payload).where(
            deliveries.c.delivery_id == delivery_id, deliveries.c.hook_id == hook_id
        )
        async with self._db.connect() as conn:
            value: dict[str, Any] | None = (await conn.execute(stmt)).scalar_one_or_none()
        return value

    async def mark_routed(self, delivery_id: str, hook_id: str, now: float) -> None:
        """Record that routing finished (idempotent)."""
        await self._db.fetch(_MARK_ROUTED, p_delivery_id=delivery_id, p_hook_id=hook_id, p_now=now)

    async def note_failure(
        self, delivery_id: str, hook_id: str, error: str, *, now: float, max_attempts: int
    ) -> bool:
        """Count a failed routing attempt; True when it dead-letters the delivery.

        The attempt that reaches `max_attempts` sets `dead_at` (once, in the same
        statement): the sweeper never re-enqueues the row again. Otherwise the sweeper
        will try again.
        """
        attempts = deliveries.c.route_attempts + 1
        stmt = (
            update(deliveries)
            .where(deliveries.c.delivery_id == delivery_id, deliveries.c.hook_id == hook_id)
            .values(
                route_attempts=attempts,
                last_error=error[:2000],
                dead_at=case(
                    (deliveries.c.dead_at.is_not(None), deliveries.c.dead_at),
                    (attempts >= max_attempts, now),
                    else_=None,
                ),
            )
            .returning(deliveries.c.dead_at)
        )
        async with self._db.begin() as conn:
            row = (await conn.execute(stmt)).first()
        return row is not None and row[0] is not None

    async def unrouted(self, received_before: float, limit: int = 100) -> list[Delivery]:
        """Deliveries accepted but not routed yet (dead letters excluded), oldest first."""
        stmt = (
            select(deliveries)
            .where(
                deliveries.c.routed_at.is_(None),
                deliveries.c.dead_at.is_(None),
                deliveries.c.received_at < received_before,
            )
            .order_by(deliveries.c.received_at)
            .limit(limit)
        )
        async with self._db.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [_delivery(r) for r in rows]

    async def delete_settled(self, received_before: float, limit: int) -> int:
        """Delete at most `limit` deliveries received before `received_before` that are
        routed or dead-lettered, oldest first; return how many went.

        An unrouted, live delivery is never deleted, however old: it still has work to
        do (the sweeper routes it). One bounded statement, so a pass holds locks briefly.
        """
        oldest = (
            select(deliveries.c.id)
            .where(
                deliveries.c.received_at < received_before,
                or_(deliveries.c.routed_at.is_not(None), deliveries.c.dead_at.is_not(None)),
            )
            .order_by(deliveries.c.id)
            .limit(limit)
        )
        stmt = delete(deliveries).where(deliveries.c.id.in_(oldest.scalar_subquery()))
        async with self._db.begin() as conn:
            return (await conn.execute(stmt)).rowcount

    async def revive(self, delivery_id: str, hook_id: str) -> bool:
        """Take a dead letter back into routing (an operator's re-drive): its attempts
        start again from zero and it is unrouted, so the job handler routes it and the
        sweeper re-enqueues it until it is. True when this call revived it; False when
        it is not (or no longer) dead-lettered. One conditional statement."""
        stmt = (
            update(deliveries)
            .where(*_THIS_DELIVERY, deliveries.c.dead_at.is_not(None))
            .values(dead_at=None, route_attempts=0, routed_at=None)
            .returning(deliveries.c.id)
        )
        rows = await self._db.fetch(stmt, p_delivery_id=delivery_id, p_hook_id=hook_id)
        return bool(rows)

    async def dead_letters(self, limit: int = 5) -> tuple[int, list[Delivery]]:
        """How many deliveries are dead-lettered, and the latest `limit` of them."""
        dead = deliveries.c.dead_at.is_not(None)
        count = select(func.count()).select_from(deliveries).where(dead)
        latest = (
            select(deliveries)
            .where(dead)
            .order_by(deliveries.c.dead_at.desc(), deliveries.c.id.desc())
            .limit(limit)
        )
        async with self._db.connect() as conn:
            total = (await conn.execute(count)).scalar_one()
            rows = (await conn.execute(latest)).mappings().all()
        return int(total), [_delivery(r) for r in rows]


def event_to_json(event: Event) -> dict[str, Any]:
    """The `parsed` column's value: every `Event` field, the intent by its value, the
    round (if any) as an object of its fields."""
    return {**dataclasses.asdict(event), "intent": event.intent.value}


def event_from_json(value: Mapping[str, Any]) -> Event:
    """The `Event` stored by `event_to_json`. Raises `BadEvent` for anything else.

    A row stored before a field existed (`round`) lacks it and reads as its default.
    """
    if not isinstance(value, Mapping) or not set(value) <= _EVENT_FIELDS:
        raise BadEvent(f"stored parsed event is not an event: {value!r:.200}")
    stored_round = value.get("round")
    try:
        return Event(
            **{
                **value,
                "intent": Intent(value["intent"]),
                "round": None if stored_round is None else RoundTrigger(**stored_round),
            }
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadEvent(f"stored parsed event is malformed: {exc!r}") from exc


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
        last_error=row["last_error"],
        dead_at=row["dead_at"],
    )
