"""Nothing poisons the pipeline, for real: `aw serve` with poisoned rows in its inbox (issue 10 §5).

A row stored before the ingress refused long ids (195 characters, with a hook id) once
made every sweeper pass raise and `aw serve` exit 1 at every start. With it, and with a
dead-lettered row, in the inbox, the server comes up, serves, and comes up again.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import insert

from agent_workflow.core.model import Event, Phase
from agent_workflow.ingress import parse
from agent_workflow.store.deliveries import event_to_json
from agent_workflow.store.schema import deliveries
from tests.acceptance.system import Processes, World, eventually
from tests.ingress.helpers import TRIGGERS, labeled

pytestmark = pytest.mark.slow

LONG_ID = "a" * 195


async def test_poisoned_inbox__serve_starts_serves_and_restarts(
    embedded: World, procs: Processes, serve_url: str
) -> None:
    world = embedded
    procs.env["AW_MAX_ROUTE_ATTEMPTS"] = "2"
    rows = []
    for delivery, number, dead_at in ((LONG_ID, 901, None), ("dead-one", 902, 1.0)):
        event = parse("issues", labeled("agent", number=number), delivery, TRIGGERS)
        assert isinstance(event, Event)
        rows.append(
            {
                "delivery_id": delivery,
                "hook_id": "123456789",
                "event": "issues",
                "action": "labeled",
                "payload": {},
                "parsed": event_to_json(event),
                # Old enough for the sweeper, young enough for the retention to keep.
                "received_at": time.time() - 3600,
                "route_attempts": 2 if dead_at else 0,
                "last_error": "RuntimeError('always')" if dead_at else None,
                "dead_at": dead_at,
            }
        )
    async with world.store.engine.begin() as conn:
        await conn.execute(insert(deliveries), rows)

    await procs.start_serve("serve-1", serve_url)
    issue = await world.open_issue("Served despite a poisoned inbox")
    await world.label_agent(issue)
    await world.wait_done(issue, Phase.PLAN)

    async def long_row_handled() -> bool:
        row = await world.store.deliveries.get(LONG_ID, "123456789")
        return row is not None and (row.routed_at is not None or row.dead_at is not None)

    await eventually(long_row_handled, "the 195-character row routed or dead-lettered")
    await procs.by_owner("serve-1").stop()
    await procs.start_serve("serve-2", serve_url)  # comes up again (it once exited 1)
    await world.approve(issue)
    await world.wait_done(issue, Phase.DELIVER)

    dead = await world.store.deliveries.get("dead-one", "123456789")
    assert dead is not None
    assert (dead.routed_at, dead.route_attempts, dead.dead_at) == (None, 2, 1.0)
