"""Embedded mode, for real: one `aw serve` process, no Redis, a SQLite file (DESIGN §6)."""

from __future__ import annotations

import asyncio
import signal

import pytest

from agent_workflow.core.model import Phase
from tests.acceptance.system import DEADLINE_S, Processes, Timing, World, read_log

pytestmark = pytest.mark.slow


async def test_sigkill_serve_mid_deliver_and_restart__issue_completes_once(
    embedded: World, procs: Processes, serve_url: str
) -> None:
    """Window: the only process (ingress, queue and agent in one) dies while deliver's agent runs.

    The in-process queue dies with it; nothing but SQLite remembers the phase. The
    restarted `aw serve` recovers it (start-up pass, then the sweeper once the
    lease has expired), resumes the same agent session, opens exactly one pull
    request and posts each comment once; the issue then completes.
    """
    world = embedded
    await procs.start_serve("serve-1", serve_url)
    issue = await world.open_issue("Kill the server in the middle of deliver")
    await world.label_agent(issue)
    await world.wait_done(issue, Phase.PLAN)
    await world.approve(issue)

    first = await world.wait_agent(issue, Phase.DELIVER)
    assert first.owner == "serve-1"
    await procs.by_owner("serve-1").kill()
    await procs.start_serve("serve-2", serve_url)

    await world.finish_lifecycle(issue, after=Phase.DELIVER)

    await world.assert_guarantees(issue)
    deliver_runs = await world.agent_runs(issue, Phase.DELIVER)
    assert [(r.mode, r.owner) for r in deliver_runs] == [
        ("fresh", "serve-1"),
        ("resume", "serve-2"),
    ]
    killed, resumed = deliver_runs
    assert killed.outcome is None, "the SIGKILL came after the agent finished: not mid-phase"
    assert resumed.session_id == killed.session_id, "the restart started a new session (G2)"


@pytest.mark.parametrize("timing", [Timing(shutdown_grace_s=0.5)], ids=["grace-shorter-than-agent"])
async def test_sigterm_serve_mid_plan__exits_0_releases_the_lease_restart_completes(
    embedded: World, procs: Processes, serve_url: str
) -> None:
    """Window: an orderly stop (SIGTERM) of the single embedded process while an agent runs.

    As for `aw worker`: stop accepting webhooks, give the running phase the
    shutdown grace (0.5 s, shorter than the agent), then cancel it and release
    its lease, close the runtime and exit 0. The restarted server resumes the
    same session and the issue completes with every effect once.
    """
    world = embedded
    await procs.start_serve("serve-1", serve_url)
    issue = await world.open_issue("Stop the server in the middle of the plan")
    await world.label_agent(issue)

    first = await world.wait_agent(issue, Phase.PLAN)
    stopping = procs.by_owner("serve-1")
    assert stopping.proc is not None
    await stopping.signal(signal.SIGTERM)
    code = await asyncio.wait_for(stopping.proc.wait(), DEADLINE_S)
    log = read_log(stopping)
    await procs.start_serve("serve-2", serve_url)

    await world.finish_lifecycle(issue, after=Phase.PLAN)

    await world.assert_guarantees(issue)
    plan_runs = await world.agent_runs(issue, Phase.PLAN)
    assert [(r.mode, r.owner) for r in plan_runs] == [("fresh", "serve-1"), ("resume", "serve-2")]
    assert plan_runs[1].session_id == first.session_id
    assert code == 0, f"aw serve exited {code} on SIGTERM (graceful stop expected)\n{log[-2000:]}"
    assert '"phase.lease_released"' in log, f"the lease was not released on SIGTERM\n{log[-2000:]}"
