"""The job handler routes the event the ingress stored; it never parses the payload again.

A custom trigger is honoured end to end only if the delivery is parsed once, at the
door, with the configured triggers, and routed as stored. These tests run the
handler over a real store (SQLite and PostgreSQL) with a router that records.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from agent_workflow.config import load_settings
from agent_workflow.core.model import Event, Intent, Phase
from agent_workflow.core.repo_settings import NoRepoConfigs, RepoConfig
from agent_workflow.core.routed import Action, Routed
from agent_workflow.forge.repo_config import parse_config
from agent_workflow.ingress import Triggers, create_app, parse
from agent_workflow.ingress.repo_triggers import RepoTriggers
from agent_workflow.service.handler import JobHandler
from agent_workflow.service.jobs import route_job
from agent_workflow.service.runtime import triggers_from
from agent_workflow.store import Store
from agent_workflow.store.db import MIGRATIONS
from agent_workflow.store.schema import deliveries
from tests.conftest import FakeClock
from tests.ingress.helpers import (
    SECRET,
    TRIGGERS,
    Dispatched,
    commented,
    delivery_id,
    encode,
    labeled,
    signed_headers,
)

HOOK = "42"


class RecordingRouter:
    """A router that records the events it is given (and can be told to fail)."""

    def __init__(self) -> None:
        self.routed: list[Event] = []
        self.states: list[object] = []
        self.resumed: list[tuple[int, Phase]] = []
        self.error: Exception | None = None

    async def route(self, event: Event, state: object = None) -> Routed:
        self.routed.append(event)
        self.states.append(state)
        if self.error is not None:
            raise self.error
        return Routed(Action.NOOP, "recorded")

    async def resume(self, task_id: int, phase: Phase) -> Routed:
        self.resumed.append((task_id, phase))
        return Routed(Action.NOOP, "recorded")


@pytest.fixture
def router() -> RecordingRouter:
    return RecordingRouter()


MAX_ROUTE_ATTEMPTS = 3


def handler_for(
    store: Store, router: RecordingRouter, clock: FakeClock, triggers: Triggers = TRIGGERS
) -> JobHandler:
    return JobHandler(
        store,
        router,
        clock,
        triggers=RepoTriggers(triggers, NoRepoConfigs()),
        max_route_attempts=MAX_ROUTE_ATTEMPTS,
    )


@contextmanager
def statements(store: Store) -> Iterator[list[str]]:
    """Every SQL statement the store sends to the `deliveries` table meanwhile."""
    seen: list[str] = []

    def record(sql: str) -> None:
        if "deliveries" in sql:
            seen.append(" ".join(sql.split()))

    stop = store.db.observe(record)
    try:
        yield seen
    finally:
        stop()


async def store_delivery(
    store: Store, name: str, payload: dict[str, Any], parsed: Event, now: float
) -> str:
    """A delivery stored as the ingress stores it: the payload and the event it parsed."""
    assert await store.deliveries.record(
        delivery_id=parsed.delivery_id,
        hook_id=HOOK,
        event=name,
        action=str(payload.get("action", "")),
        payload=payload,
        parsed=parsed,
        now=now,
    )
    return parsed.delivery_id


def parsed_event(name: str, payload: dict[str, Any], triggers: Triggers) -> Event:
    result = parse(name, payload, delivery_id(), triggers)
    assert isinstance(result, Event), result
    return result


async def routed_at(store: Store, delivery: str) -> float | None:
    row = await store.deliveries.get(delivery, HOOK)
    assert row is not None
    return row.routed_at


async def test_route__stored_event_is_routed_as_stored__not_reparsed_with_the_handlers_triggers(
    store: Store, router: RecordingRouter, clock: FakeClock
) -> None:
    """Accepted under `AW_PLAN_LABEL=robot-go`; the defaults would ignore that label.

    The handler, even one holding the default triggers, routes the stored START_PLAN.
    """
    custom = dataclasses.replace(TRIGGERS, plan_label="robot-go")
    payload = labeled("robot-go")
    assert not isinstance(parse("issues", payload, "d", TRIGGERS), Event)  # defaults: ignored
    stored = parsed_event("issues", payload, custom)
    delivery = await store_delivery(store, "issues", payload, stored, clock.now)

    await handler_for(store, router, clock, TRIGGERS).route_delivery(delivery, HOOK)

    assert router.routed == [stored]
    assert router.routed[0].intent is Intent.START_PLAN
    assert await routed_at(store, delivery) == clock.now


async def test_route__the_payload_is_never_read__one_read_and_one_update(
    store: Store, router: RecordingRouter, clock: FakeClock
) -> None:
    """The duplicate-storm hot path: a narrow read (no payload) and the final `mark_routed`.

    The stored payload here would not even parse; routing does not care.
    """
    stored = parsed_event("issue_comment", commented("/approve"), TRIGGERS)
    delivery = await store_delivery(store, "issue_comment", {"garbage": True}, stored, clock.now)
    handler = handler_for(store, router, clock)

    with statements(store) as first:
        await handler.route_delivery(delivery, HOOK)
    with statements(store) as duplicate:
        await handler.route_delivery(delivery, HOOK)

    assert router.routed == [stored]
    assert router.states == [None]  # the state (no task yet) came with the read
    assert [s.split()[0] for s in first] == ["SELECT", "UPDATE"]
    assert "payload" not in first[0]
    assert [s.split()[0] for s in duplicate] == ["SELECT"]  # routed already: nothing else


async def test_route__job_payload_from_the_queue__routes_the_stored_event(
    store: Store, router: RecordingRouter, clock: FakeClock
) -> None:
    stored = parsed_event("issues", labeled("agent-approved"), TRIGGERS)
    delivery = await store_delivery(store, "issues", labeled("agent-approved"), stored, clock.now)
    _, job = route_job(delivery, HOOK)

    await handler_for(store, router, clock)(job)

    assert [e.intent for e in router.routed] == [Intent.APPROVE]


async def test_route__custom_retry_command_from_settings__accepted_and_routed_as_retry(
    store: Store, router: RecordingRouter, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`AW_RETRY_COMMAND=/again`, through the ingress and the handler built from one `Settings`.

    `/again` is accepted and routed as a retry; `/retry` is not a command any more: it is
    kept (a repository's own command could be `/retry`) and routed as nothing.
    """
    monkeypatch.setenv("AW_RETRY_COMMAND", "/again")
    triggers = triggers_from(load_settings())
    dispatched = Dispatched()
    app = create_app(
        store,
        dispatched,
        secret=SECRET,
        max_body_bytes=65_536,
        triggers=triggers,
        body_timeout_s=10.0,
    )
    handler = handler_for(store, router, clock, triggers)

    answers = []
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://ingress"
    ) as client:
        for body in ("/again", "/retry"):
            raw = encode(commented(body))
            headers = signed_headers(raw, "issue_comment", delivery_id(), hook_id=HOOK)
            answers.append(await client.post("/webhooks/github", content=raw, headers=headers))
    for job_delivery, hook in dispatched.calls:
        await handler.route_delivery(job_delivery, hook)

    assert [a.status_code for a in answers] == [202, 202]
    assert [e.intent for e in router.routed] == [Intent.RETRY]
    assert len(dispatched.calls) == 2  # both routed: one as a retry, one as nothing


async def test_route__router_fails__failure_noted_row_left_for_the_sweeper(
    store: Store, router: RecordingRouter, clock: FakeClock
) -> None:
    stored = parsed_event("issues", labeled("agent"), TRIGGERS)
    delivery = await store_delivery(store, "issues", labeled("agent"), stored, clock.now)
    router.error = RuntimeError("database blip")

    with pytest.raises(RuntimeError):
        await handler_for(store, router, clock).route_delivery(delivery, HOOK)

    row = await store.deliveries.get(delivery, HOOK)
    assert row is not None
    assert (row.routed_at, row.route_attempts) == (None, 1)
    assert [d.delivery_id for d in await store.deliveries.unrouted(float("inf"))] == [delivery]


async def test_route__unreadable_stored_event__noted_and_marked_routed(
    store: Store, router: RecordingRouter, clock: FakeClock
) -> None:
    stored = parsed_event("issues", labeled("agent"), TRIGGERS)
    delivery = await store_delivery(store, "issues", labeled("agent"), stored, clock.now)
    async with store.engine.begin() as conn:
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.delivery_id == delivery)
            .values(parsed={"intent": "dance"})
        )

    await handler_for(store, router, clock).route_delivery(delivery, HOOK)

    assert router.routed == []
    async with store.engine.connect() as conn:
        row = (
            await conn.execute(
                select(deliveries.c.routed_at, deliveries.c.last_error).where(
                    deliveries.c.delivery_id == delivery
                )
            )
        ).one()
    assert row.routed_at == clock.now
    assert "stored parsed event" in row.last_error


async def insert_legacy(store: Store, name: str, payload: dict[str, Any], now: float) -> str:
    """A row as the ingress stored it before `parsed` existed (the column left NULL)."""
    delivery = delivery_id()
    async with store.engine.begin() as conn:
        await conn.execute(
            insert(deliveries).values(
                delivery_id=delivery,
                hook_id=HOOK,
                event=name,
                action=payload["action"],
                payload=payload,
                received_at=now,
            )
        )
    return delivery


async def test_route__row_without_parsed_event__parsed_once_with_the_configured_triggers(
    store: Store, router: RecordingRouter, clock: FakeClock
) -> None:
    """Fallback for rows stored before migration 0002: the configured triggers, not defaults."""
    custom = dataclasses.replace(TRIGGERS, retry_command="/again")
    again = await insert_legacy(store, "issue_comment", commented("/again"), clock.now)
    retry = await insert_legacy(store, "issue_comment", commented("/retry"), clock.now)
    handler = handler_for(store, router, clock, custom)

    await handler.route_delivery(again, HOOK)
    await handler.route_delivery(retry, HOOK)

    assert [(e.delivery_id, e.intent) for e in router.routed] == [(again, Intent.RETRY)]
    assert await routed_at(store, again) == await routed_at(store, retry) == clock.now


def _migrate(connection: Connection, revision: str, *, down: bool) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    (command.downgrade if down else command.upgrade)(cfg, revision)


async def test_migration_0002__rows_from_before_it_are_still_routed(
    store: Store, router: RecordingRouter, clock: FakeClock
) -> None:
    """Window: deliveries accepted by the previous version, unrouted when this one starts."""
    async with store.engine.begin() as conn:
        await conn.run_sync(_migrate, "0001", down=True)
        # Only the columns 0001 has (`parsed` is not among them).
        await conn.execute(
            insert(deliveries).values(
                delivery_id="before-upgrade",
                hook_id=HOOK,
                event="issues",
                action="labeled",
                payload=labeled("agent"),
                received_at=clock.now,
            )
        )
        await conn.run_sync(_migrate, "head", down=False)

    await handler_for(store, router, clock).route_delivery("before-upgrade", HOOK)

    assert [(e.delivery_id, e.intent) for e in router.routed] == [
        ("before-upgrade", Intent.START_PLAN)
    ]


class RobotGo:
    """A repository whose settings file names its own plan label; counts the reads."""

    def __init__(self) -> None:
        self.reads = 0

    async def for_repo(self, repo: str, default_branch: str) -> RepoConfig:
        self.reads += 1
        return RepoConfig(parse_config("triggers: {plan_label: robot-go}"))


async def test_route__repository_names_its_own_plan_label__robot_go_plans_agent_nothing(
    store: Store, router: RecordingRouter, clock: FakeClock
) -> None:
    """Stored as the ingress stores them under the deployment's `agent`: the `agent` label
    with its event, `robot-go` without one. Routed with the repository's triggers, only
    `robot-go` starts a plan; both deliveries end routed."""
    configs = RobotGo()
    handler = JobHandler(
        store,
        router,
        clock,
        triggers=RepoTriggers(TRIGGERS, configs),
        max_route_attempts=MAX_ROUTE_ATTEMPTS,
    )
    ours = await store_delivery(
        store, "issues", labeled("agent"), parsed_event("issues", labeled("agent"), TRIGGERS), 1.0
    )
    theirs = delivery_id()
    await store.deliveries.record(
        delivery_id=theirs,
        hook_id=HOOK,
        event="issues",
        action="labeled",
        payload=labeled("robot-go"),
        parsed=None,
        now=2.0,
    )

    for delivery in (ours, theirs):
        await handler.route_delivery(delivery, HOOK)

    assert [(e.intent, e.delivery_id) for e in router.routed] == [(Intent.START_PLAN, theirs)]
    for delivery in (ours, theirs):
        row = await store.deliveries.get(delivery, HOOK)
        assert row is not None
        assert row.routed_at is not None
    assert configs.reads == 2


async def test_route__no_repository_triggers__stored_event_routed_without_rereading(
    store: Store, router: RecordingRouter, clock: FakeClock
) -> None:
    """A repository without `triggers:`: the stored event is routed as accepted, its payload
    never read again."""
    stored = parsed_event("issues", labeled("agent"), TRIGGERS)
    delivery = await store_delivery(store, "issues", labeled("agent"), stored, clock.now)
    with statements(store) as seen:
        await handler_for(store, router, clock).route_delivery(delivery, HOOK)
    assert [e.intent for e in router.routed] == [Intent.START_PLAN]
    assert not any("payload" in sql.split("FROM")[0] for sql in seen), seen
