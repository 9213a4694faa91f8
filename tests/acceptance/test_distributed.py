"""Distributed mode, for real: `aw serve` + `aw worker` processes on PostgreSQL and Redis (BullMQ).

Workers are killed (SIGKILL) or stopped (SIGTERM) while their agent runs a
phase; the issue must still walk plan → /approve → deliver → merge → compound
with one task, one fresh agent run per phase attempt (a takeover *resumes* the
same session) and every GitHub effect exactly once (DESIGN §2, §6, §8).
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
import redis.asyncio as aioredis

from agent_workflow.core.model import Phase
from agent_workflow.queue.bullmq_backend import BullQueue
from agent_workflow.service.jobs import route_job
from github_emulator import EmulatorConfig
from tests.acceptance.system import (
    DEADLINE_S,
    AgentRun,
    Processes,
    Timing,
    World,
    eventually,
    owner_of,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

STALLED_REASON = "job stalled more than allowable limit"
NO_SWEEP = {"AW_SWEEP_INTERVAL_S": "3600"}  # one pass at start, then none during the test


def _modes(runs: list[AgentRun]) -> list[tuple[str, str]]:
    return [(r.mode, r.owner) for r in runs]


async def test_sigkill_worker_running_the_agent__other_worker_resumes_the_session(
    distributed: World, procs: Processes, serve_url: str, timing: Timing
) -> None:
    """Window: a worker dies (SIGKILL) while its agent runs the plan phase.

    The phase's lease stops being renewed; once it has expired the other worker
    takes the phase over (through BullMQ's stalled-job redelivery or the sweeper,
    whichever comes first), *resumes* the same agent session rather than
    starting a second one (G2), and the issue completes with every effect once
    (G3). Prints the seconds from the SIGKILL to the resumed agent's start.
    """
    world = distributed
    await procs.start_serve("serve", serve_url)
    await asyncio.gather(procs.start_worker("worker-a"), procs.start_worker("worker-b"))
    issue = await world.open_issue("Kill the worker in the middle of the plan")
    await world.label_agent(issue)

    first = await world.wait_agent(issue, Phase.PLAN)
    victim = procs.by_owner(first.owner)
    survivor = ({"worker-a", "worker-b"} - {first.owner}).pop()
    killed_at = time.time()
    await victim.kill()
    left = await world.phase(issue, Phase.PLAN)
    assert left is not None
    assert left.lease_owner == first.owner, "taken over before the lease could expire"
    assert left.lease_until is not None

    await world.finish_lifecycle(issue, after=Phase.PLAN)

    await world.assert_guarantees(issue)
    plan_runs = await world.agent_runs(issue, Phase.PLAN)
    assert _modes(plan_runs) == [("fresh", first.owner), ("resume", survivor)]
    killed, resumed = plan_runs
    assert killed.outcome is None, "the SIGKILL came after the agent finished: not mid-phase"
    assert resumed.session_id == killed.session_id, "the takeover started a new session (G2)"
    assert resumed.attempt == killed.attempt
    assert resumed.fence > killed.fence
    assert resumed.started_at > left.lease_until, "taken over before the lease expired"
    print(
        f"\nSIGKILL -> resume on the other worker: {resumed.started_at - killed_at:.2f} s "
        f"(lease left {left.lease_until - killed_at:.2f} s after the kill; {timing.describe()})"
    )


@pytest.mark.parametrize(
    "timing",
    # The lease (2 s) ends before BullMQ's lock (4 s): the redelivered job always
    # finds the phase free and takes it over, so the same job runs the agent twice.
    [Timing(lease_s=2.0, heartbeat_s=0.5, lock_ms=4000, stalled_ms=1000)],
    ids=["lease-shorter-than-lock"],
)
async def test_job_stalled_twice_is_failed_by_bullmq__the_sweeper_completes_the_phase(
    distributed: World, procs: Processes, serve_url: str, bull: BullQueue, redis_url: str
) -> None:
    """Window: BullMQ gives up on a job ("stalled more than allowable limit", DESIGN §6).

    The route job running the plan's agent loses its worker twice (SIGKILL
    each time): the first stall hands it to the second worker, which resumes
    the session; the second stall exceeds `max_stalled_count=1`, so a third
    worker fails the job without running it. No queue retry is left: only the
    sweeper (the only one running periodically here is the third worker's) can
    bring the phase to `complete`, resuming the same session again (G4, G2).
    """
    world = distributed
    procs.env["AW_MAX_STALLED_COUNT"] = "1"  # BullMQ's default, made explicit
    await procs.start_serve("serve", serve_url, NO_SWEEP)
    await asyncio.gather(
        procs.start_worker("worker-a", NO_SWEEP), procs.start_worker("worker-b", NO_SWEEP)
    )
    issue = await world.open_issue("A job that stalls twice")
    delivery_id = await world.label_agent(issue)
    delivery = await world.store.deliveries.get(delivery_id, str(EmulatorConfig().hook_id))
    assert delivery is not None, "the labelled webhook was not stored"
    job_id, _ = route_job(delivery.delivery_id, delivery.hook_id)

    first = await world.wait_agent(issue, Phase.PLAN)
    await procs.by_owner(first.owner).kill()
    second = await world.wait_agent(issue, Phase.PLAN, mode="resume", after=first.id)
    assert second.owner != first.owner
    info = await bull.job_info(job_id)
    assert info is not None
    assert info["stalled_count"] == 1, f"the resumed agent is not in the redelivered job: {info}"
    await procs.by_owner(second.owner).kill()

    sweeper = await procs.start_worker("worker-c", {"AW_SWEEP_INTERVAL_S": "1"})

    events_key = f"{bull.prefix}:{bull.name}:events"  # BullMQ's event stream of the queue
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)

    async def failed_as_stalled() -> str | None:
        for _, fields in await client.xrange(events_key) or []:
            event = dict(fields or {})
            if event.get("event") == "failed" and event.get("jobId") == job_id:
                return str(event.get("failedReason"))
        return None

    try:
        reason = await eventually(
            failed_as_stalled, f"BullMQ failing job {job_id}", context=procs.log_tails
        )
    finally:
        await client.aclose()
    assert reason == STALLED_REASON

    await world.finish_lifecycle(issue, after=Phase.PLAN)

    await world.assert_guarantees(issue)
    plan_runs = await world.agent_runs(issue, Phase.PLAN)
    assert _modes(plan_runs) == [
        ("fresh", first.owner),
        ("resume", second.owner),
        ("resume", owner_of(sweeper)),
    ]
    assert len({r.session_id for r in plan_runs}) == 1, "a takeover started a new session (G2)"
    assert [r.outcome for r in plan_runs[:2]] == [None, None], (
        "a kill came after the agent finished"
    )


@pytest.mark.parametrize("timing", [Timing(shutdown_grace_s=0.5)], ids=["grace-shorter-than-agent"])
async def test_sigterm_mid_phase__worker_exits_0_and_other_worker_resumes(
    distributed: World, procs: Processes, serve_url: str
) -> None:
    """Window: an orderly shutdown (SIGTERM, e.g. a deploy) while an agent runs deliver.

    The shutdown grace (0.5 s) is shorter than the agent's run, so the worker
    cancels the handler, releases the phase lease and hands the job back to the
    queue, then exits 0. The other worker resumes the same session at once (no
    lease expiry to wait for) and the issue completes with every effect once.
    """
    world = distributed
    await procs.start_serve("serve", serve_url)
    await asyncio.gather(procs.start_worker("worker-a"), procs.start_worker("worker-b"))
    issue = await world.open_issue("Stop the worker in the middle of deliver")
    await world.label_agent(issue)
    await world.wait_done(issue, Phase.PLAN)
    await world.approve(issue)

    first = await world.wait_agent(issue, Phase.DELIVER)
    stopping = procs.by_owner(first.owner)
    survivor = ({"worker-a", "worker-b"} - {first.owner}).pop()
    assert stopping.proc is not None
    await stopping.signal(signal.SIGTERM)
    code = await asyncio.wait_for(stopping.proc.wait(), DEADLINE_S)
    assert code == 0, f"SIGTERM: exit code {code}\n{procs.log_tails()}"

    await world.finish_lifecycle(issue, after=Phase.DELIVER)

    await world.assert_guarantees(issue)
    deliver_runs = await world.agent_runs(issue, Phase.DELIVER)
    assert _modes(deliver_runs) == [("fresh", first.owner), ("resume", survivor)]
    assert deliver_runs[0].outcome is None, "the agent finished before SIGTERM: not mid-phase"
    assert deliver_runs[1].session_id == deliver_runs[0].session_id
    log = stopping.log_path.read_text()
    assert '"phase.lease_released"' in log, "the stopping worker did not release the lease"
    assert '"worker.stopped"' in log
