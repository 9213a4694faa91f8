"""The counters tell the same story as the database and GitHub, after a real lifecycle.

`aw serve` (embedded) runs in this event loop against the GitHub emulator, as in
`tests/integration`; only the agent is scripted. The metrics are this process's, so each
test compares two scrapes (before, after) and checks the growth against what the
database recorded and what the emulator served — exact counts, not "more than zero".
"""

from __future__ import annotations

from collections import Counter

import httpx
from sqlalchemy import func, select

from agent_workflow.core.effects import EffectKind
from agent_workflow.core.model import Phase
from agent_workflow.store import Store
from agent_workflow.store.schema import agent_runs, deliveries, effects, phase_runs
from github_emulator import EmulatorServer
from tests.integration.helpers import abandon_a_plan, github_calls
from tests.integration.system import running_system
from tests.support.events import REPO, TRUSTED
from tests.telemetry.helpers import Samples, by_label, delta, parse, scrape


async def _served_page(emu: EmulatorServer) -> Samples:
    hook_url = emu.config.webhook_url
    assert hook_url is not None
    async with httpx.AsyncClient() as client:
        answer = await client.get(hook_url.replace("/webhooks/github", "/metrics"))
    assert answer.status_code == 200
    return parse(answer.text)


async def _agent_runs(store: Store, *, owner_not: str = "") -> Counter[tuple[str, str]]:
    stmt = (
        select(phase_runs.c.phase, agent_runs.c.mode)
        .join(phase_runs, phase_runs.c.id == agent_runs.c.phase_run_id)
        .where(agent_runs.c.owner != owner_not)
    )
    async with store.engine.connect() as conn:
        return Counter((r.phase, r.mode) for r in (await conn.execute(stmt)).all())


async def _done_effects(store: Store) -> Counter[str]:
    stmt = select(effects.c.kind).where(effects.c.status == "done")
    async with store.engine.connect() as conn:
        return Counter(str(r.kind) for r in (await conn.execute(stmt)).all())


async def test_lifecycle__counters_match_the_database_and_github(store: Store, db_url: str) -> None:
    """Windows on the way: the plan comment applied by GitHub with its answer lost
    (uncertain → reconciled → adopted), one secondary rate limit on adding a label (one
    wait), and GitHub's redelivery of the `agent` label's delivery (a duplicate)."""
    async with running_system(store, db_url, uncertain_backoff_s=0.0) as system:
        emu = system.emu
        before = await scrape()
        issue = await emu.admin.create_issue(REPO, "Add widgets", body="Please.", author=TRUSTED)
        await emu.admin.reset_counters()
        await emu.admin.add_fault("POST", r"/issues/\d+/comments$", "drop_after_apply")
        await emu.admin.add_fault(
            "POST", r"/issues/\d+/labels$", "secondary_rate_limit", retry_after=0
        )

        labelled = await emu.admin.add_label(REPO, issue, "agent", user=TRUSTED)
        await system.phase_settled(issue, Phase.PLAN)
        [again] = await emu.admin.redeliver(labelled.deliveries[0].id)
        assert again.status_code == 200  # answered "duplicate", nothing stored
        await emu.admin.comment(REPO, issue, "/approve", user=TRUSTED)
        await system.phase_settled(issue, Phase.DELIVER)
        task = await store.tasks.find(REPO, issue)
        assert task is not None
        assert task.pr_number is not None
        await emu.admin.merge_pull(REPO, task.pr_number, user=TRUSTED)
        await system.phase_settled(issue, Phase.COMPOUND)

        after = await _served_page(emu)  # `aw serve`'s own GET /metrics, over HTTP
        served = github_calls(await emu.admin.counters())
        assert [f["fired"] for f in await emu.admin.faults()] == [1, 1]

    # Deliveries: one `received` per inbox row, the redelivery a duplicate, nothing refused.
    async with store.engine.connect() as conn:
        stored = (await conn.execute(select(func.count()).select_from(deliveries))).scalar_one()
    webhooks = "aw_webhook_deliveries_total"
    assert delta(after, before, webhooks, outcome="received") == stored
    assert delta(after, before, webhooks, outcome="duplicate") == 1
    assert delta(after, before, webhooks, outcome="rejected") == 0
    # Each stored delivery was routed once: one routing-latency observation each.
    assert delta(after, before, "aw_routing_latency_seconds_count") == stored

    # Agent runs exactly as `agent_runs` recorded them; one complete run per phase.
    runs = await _agent_runs(store)
    assert runs == {("plan", "fresh"): 1, ("deliver", "fresh"): 1, ("compound", "fresh"): 1}
    assert by_label(after, before, "aw_agent_runs_total", ("phase", "mode")) == runs
    durations = by_label(after, before, "aw_phase_duration_seconds_count", ("phase", "outcome"))
    assert durations == {(p, "complete"): 1 for p in ("plan", "deliver", "compound")}

    # Effects: every `done` row was either performed or adopted, and only the dropped
    # comment was adopted (after one reconciliation of its one uncertain outcome).
    done = await _done_effects(store)
    performed = by_label(after, before, "aw_effects_total", ("kind",), result="performed")
    adopted = by_label(after, before, "aw_effects_total", ("kind",), result="adopted")
    assert adopted == {(EffectKind.COMMENT.value,): 1}
    assert {k: performed.get((k,), 0) + adopted.get((k,), 0) for k in done} == done
    assert sum(performed.values()) + 1 == sum(done.values())
    assert by_label(after, before, "aw_effects_total", ("kind",), result="reconciled") == {
        ("comment",): 1
    }
    assert by_label(after, before, "aw_uncertain_outcomes_total", ("kind",)) == {("comment",): 1}
    assert delta(after, before, "aw_effects_total", result="terminal") == 0

    # GitHub: every request the emulator served, by method and route; one rate-limit wait.
    requests = by_label(after, before, "aw_github_requests_total", ("method", "route"))
    assert {f"{m} {r}": n for (m, r), n in requests.items()} == served
    assert delta(after, before, "aw_github_requests_total", status="error") == 1  # the drop
    assert (
        delta(after, before, "aw_github_requests_total", status="429")
        + delta(after, before, "aw_github_requests_total", status="403")
        == 1
    )
    assert delta(after, before, "aw_github_rate_limit_waits_total") == 1
    assert delta(after, before, "aw_leases_lost_total") == 0
    # The queue is empty once everything settled (read at scrape time).
    depth = {dict(labels)["state"]: v for (n, labels), v in after.items() if n == "aw_queue_jobs"}
    assert depth == {"queued": 0, "running": 0}


async def test_restart__a_resumed_agent_run_is_counted_as_resume(store: Store, db_url: str) -> None:
    """Window: a worker claimed the plan, started its agent and died; `aw serve` starts and
    resumes that session. The dead worker's `fresh` row is not this process's to count."""
    issue_number = 0

    async def dead_worker(emu: EmulatorServer) -> None:
        nonlocal issue_number
        issue_number = await abandon_a_plan(store, emu)

    before = await scrape()
    async with running_system(store, db_url, before_start=dead_worker) as system:
        await system.phase_settled(issue_number, Phase.PLAN)
        after = await scrape()

    ours = await _agent_runs(store, owner_not="dead-worker")
    assert ours == {("plan", "resume"): 1}
    assert by_label(after, before, "aw_agent_runs_total", ("phase", "mode")) == ours
    assert by_label(after, before, "aw_phase_duration_seconds_count", ("phase", "outcome")) == {
        ("plan", "complete"): 1
    }
