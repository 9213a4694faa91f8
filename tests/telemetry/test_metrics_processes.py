"""`/metrics` of real processes: `aw serve` (BullMQ mode) and one `aw worker`, sharing
`PROMETHEUS_MULTIPROC_DIR` as processes of one host do.

The worker's page (`AW_METRICS_PORT`) shows the worker's own counts; serve's page shows
the sum over the host — its own deliveries *and* the worker's agent runs and effects.
Every count is checked against the database and the emulator, exactly.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from agent_workflow.core.model import Phase
from agent_workflow.demo.process import free_port
from agent_workflow.store.schema import agent_runs, deliveries, effects, phase_runs
from tests.acceptance.system import Processes, Timing, World
from tests.integration.helpers import github_calls
from tests.telemetry.helpers import Samples, by_label, parse, total

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def timing() -> Timing:
    """A quick agent: the test is about counting, not about takeovers."""
    return Timing(agent_s=0.2)


async def _page(url: str) -> Samples:
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{url}/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return parse(answer.text)


async def test_serve_and_worker__pages_count_what_the_database_holds(
    distributed: World, procs: Processes, serve_url: str, tmp_path: Path
) -> None:
    world = distributed
    shared = tmp_path / "prometheus"
    shared.mkdir()
    procs.env["PROMETHEUS_MULTIPROC_DIR"] = str(shared)
    metrics_port = free_port()
    await procs.start_serve("serve", serve_url)
    await procs.start_worker("worker", {"AW_METRICS_PORT": str(metrics_port)})

    issue = await world.open_issue("Count everything")
    await world.label_agent(issue)
    await world.finish_lifecycle(issue, Phase.PLAN)
    await world.assert_guarantees(issue)

    worker = await _page(f"http://127.0.0.1:{metrics_port}")
    serve = await _page(serve_url)
    served_by_github = github_calls(await world.admin.counters())

    async with world.store.engine.connect() as conn:
        stored = (await conn.execute(select(func.count()).select_from(deliveries))).scalar_one()
        done = (
            await conn.execute(
                select(func.count()).select_from(effects).where(effects.c.status == "done")
            )
        ).scalar_one()
        runs = Counter(
            (r.phase, r.mode)
            for r in (
                await conn.execute(
                    select(phase_runs.c.phase, agent_runs.c.mode).join(
                        phase_runs, phase_runs.c.id == agent_runs.c.phase_run_id
                    )
                )
            ).all()
        )
    assert runs == {("plan", "fresh"): 1, ("deliver", "fresh"): 1, ("compound", "fresh"): 1}

    # The worker's own page: it ran every agent and performed every effect; it received
    # no webhook (serve did) but routed every stored delivery.
    assert by_label(worker, {}, "aw_agent_runs_total", ("phase", "mode")) == runs
    assert total(worker, "aw_effects_total", result="performed") == done
    assert total(worker, "aw_webhook_deliveries_total") == 0
    assert total(worker, "aw_routing_latency_seconds_count") == stored

    # Serve's page is the host's: its deliveries plus the worker's runs and effects.
    assert total(serve, "aw_webhook_deliveries_total", outcome="received") == stored
    assert by_label(serve, {}, "aw_agent_runs_total", ("phase", "mode")) == runs
    assert total(serve, "aw_effects_total", result="performed") == done
    requests = by_label(serve, {}, "aw_github_requests_total", ("method", "route"))
    assert {f"{m} {r}": n for (m, r), n in requests.items()} == served_by_github

    # Both read the BullMQ queue's depth when scraped: nothing is left waiting.
    for page in (worker, serve):
        depth = {dict(ls)["state"]: v for (n, ls), v in page.items() if n == "aw_queue_jobs"}
        assert set(depth) == {"waiting", "active", "delayed", "prioritized", "failed"}
        assert depth["waiting"] == depth["failed"] == 0
