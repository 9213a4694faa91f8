"""Nothing missed while down (issue 12 §2), for real: `aw serve` and `aw worker` processes
on PostgreSQL and BullMQ; the emulator keeps GitHub's hook-deliveries log.

GitHub never retries a failed delivery. What it sent while `aw serve` was down is
read back from its log when `aw serve` starts (`AW_GITHUB_HOOKS`) and ingested through
the webhook's inbox and dedupe: each event is handled exactly once, also when the
real delivery of the same GUID arrives late, racing the backfill.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from agent_workflow.core.model import Phase
from agent_workflow.store.schema import deliveries
from tests.acceptance.system import REPO, USER, Processes, World, eventually, read_log

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

HOOK_ID = 1  # the emulator's webhook
BACKFILL = {
    "AW_GITHUB_HOOKS": f"{REPO}:{HOOK_ID}",
    # Reconciliation would route the labelled issue too: off, so only backfill can.
    "AW_RECONCILE_INTERVAL_S": "0",
}
DETAIL = "/repos/{owner}/{repo}/hooks/{hook_id}/deliveries/{delivery_id}"


async def _rows(world: World, guid: str) -> int:
    stmt = select(func.count()).select_from(deliveries).where(deliveries.c.delivery_id == guid)
    async with world.store.engine.connect() as conn:
        return int((await conn.execute(stmt)).scalar_one())


async def _stop_serve(procs: Processes, owner: str) -> None:
    await procs.by_owner(owner).kill()


async def test_serve_down__label_and_approve_sent_meanwhile__each_handled_once_after_start(
    distributed: World, procs: Processes, serve_url: str
) -> None:
    """Window: `aw serve` is down while a trusted user labels one issue `agent` and
    comments `/approve` on another (already planned). GitHub records both deliveries as
    failed (connection refused) and never retries them. The restarted `aw serve` reads
    the log at start and ingests both: one plan, one deliver, each once (G1–G3); one
    inbox row per GUID."""
    world = distributed
    procs.env.update(BACKFILL)
    await procs.start_serve("serve-1", serve_url)
    await procs.start_worker("worker")
    planned = await world.open_issue("Planned before the outage")
    await world.label_agent(planned)
    await world.wait_done(planned, Phase.PLAN)
    fresh = await world.open_issue("Labelled during the outage")

    await _stop_serve(procs, "serve-1")
    labelled = await world.label(fresh, "agent")
    approved = await world.admin.comment(REPO, planned, "/approve", user=USER)
    missed = [labelled, *approved.deliveries]
    assert [d.status_code for d in missed] == [None, None], "a webhook reached a stopped server"

    await procs.start_serve("serve-2", serve_url)
    await world.wait_done(fresh, Phase.PLAN)
    await world.wait_done(planned, Phase.DELIVER)

    await world.assert_guarantees(fresh, [Phase.PLAN])
    await world.assert_guarantees(planned, [Phase.PLAN, Phase.DELIVER])
    assert [len(await world.agent_runs(fresh)), len(await world.agent_runs(planned))] == [1, 2]
    assert [await _rows(world, d.id) for d in missed] == [1, 1]
    log = read_log(procs.by_owner("serve-2"))
    assert log.count('"backfill.ingested"') == 2, log[-3000:]
    assert '"backfill.' not in read_log(procs.by_owner("worker")), "a worker read the log"


async def test_backfill_races_the_late_real_delivery_of_the_same_guid__one_row_one_run(
    distributed: World, procs: Processes, serve_url: str
) -> None:
    """Window: the backfill has read the log and is fetching a missed delivery's payload
    (held 3 s by the emulator) when GitHub's redelivery of the same GUID arrives as a
    real webhook and is stored first. The backfill's insert then finds the row (the
    inbox's key is the GUID and the hook id, which the backfill takes from the logged
    headers): one row, one route to a plan, one agent run. A second real copy after
    that is answered as a duplicate."""
    world = distributed
    procs.env.update(BACKFILL)
    await procs.start_worker("worker")
    issue = await world.open_issue("Labelled while down, redelivered late")
    missed = await world.label(issue, "agent")
    assert missed.status_code is None
    await world.admin.add_fault("GET", r"/hooks/1/deliveries/\d+$", "latency", seconds=3.0)

    await procs.start_serve("serve", serve_url)

    async def fetching() -> bool:
        return (await world.admin.counters()).get("GET", DETAIL) >= 1

    await eventually(fetching, "the backfill fetching the missed payload")
    (late,) = await world.admin.redeliver(missed.id)
    assert late.status_code == 202, late  # the real delivery stored it first

    serve = procs.by_owner("serve")
    await procs.wait_log(serve, '"backfill.pass"')
    await world.wait_done(issue, Phase.PLAN)
    (again,) = await world.admin.redeliver(missed.id)

    await world.assert_guarantees(issue, [Phase.PLAN])
    assert len(await world.agent_runs(issue)) == 1
    assert await _rows(world, missed.id) == 1
    assert again.status_code == 200
    log = read_log(serve)
    assert '"duplicates": 1' in log, log[-3000:]  # the pass's counts
    assert '"backfill.ingested"' not in log
