"""Builders for core tests: events, a wired core over the in-memory twins."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from agent_workflow.agents.scripted import ScriptedAgent
from agent_workflow.core.model import Event, Intent, Phase, PhaseRun, PhaseStatus, Task, TaskInfo
from agent_workflow.core.runner import RunnerSettings
from agent_workflow.core.wiring import Core, build_core
from agent_workflow.forge.memory import MemoryForge
from agent_workflow.store import Store
from agent_workflow.store.phase_runs import RecordedResult
from tests.conftest import FakeClock

REPO = "acme/widgets"
LEASE_S = 30.0
_ids = itertools.count(1)


def event(
    intent: Intent,
    issue: int = 7,
    *,
    delivery: str | None = None,
    actor: str = "alice",
    repo: str = REPO,
    pr_number: int | None = None,
    body: str = "Make it better.",
) -> Event:
    """A parsed event as the ingress would produce it."""
    return Event(
        delivery_id=delivery or f"delivery-{next(_ids)}",
        intent=intent,
        repo=repo,
        issue_number=issue,
        actor=actor,
        title=f"Issue {issue}",
        body=body,
        clone_url=f"/tmp/{repo}.git",
        default_branch="main",
        pr_number=pr_number,
    )


def make_core(
    store: Store,
    clock: FakeClock,
    *,
    forge: MemoryForge | None = None,
    agent: ScriptedAgent | None = None,
    owner: str = "worker-a",
) -> Core:
    """A core over the twins with a fake clock and no backoff."""
    return build_core(
        store,
        forge or MemoryForge(),
        agent or ScriptedAgent(),
        RunnerSettings(owner=owner, lease_s=LEASE_S, heartbeat_s=LEASE_S / 3),
        clock=clock,
        uncertain_backoff_s=0.0,
    )


@dataclass(frozen=True)
class Seeded:
    """A phase run put into a recovery point by hand, as a (dead) worker left it."""

    task: Task
    run: PhaseRun  # as the holder saw it after its claim
    agent_run_id: int | None


async def seed_claimed(
    store: Store, clock: FakeClock, *, owner: str, start_agent: bool = True, issue: int = 7
) -> Seeded:
    """The plan phase claimed by `owner` (and its agent started, unless told otherwise)."""
    task = await store.tasks.ensure(TaskInfo(REPO, issue, title=f"Issue {issue}"), clock())
    run = await store.phases.ensure(task.id, Phase.PLAN, "d-1", clock())
    claimed = await store.phases.claim(run.id, owner, LEASE_S, clock())
    assert claimed is not None
    agent_run_id = None
    if start_agent:
        agent_run_id = await store.phases.start_agent(
            claimed.guard, session_id="s", mode="fresh", owner=owner, now=clock()
        )
    return Seeded(task, claimed, agent_run_id)


async def seed_finished(
    store: Store,
    clock: FakeClock,
    status: PhaseStatus,
    *,
    owner: str,
    text: str = "",
    reason: str = "",
) -> Seeded:
    """The plan phase finished by `owner`, which still holds the lease for the effects."""
    seeded = await seed_claimed(store, clock, owner=owner)
    assert seeded.agent_run_id is not None
    await store.phases.finish(
        seeded.run.guard,
        seeded.agent_run_id,
        RecordedResult(status, text=text, reason=reason),
        effects_lease_s=LEASE_S,
        now=clock(),
    )
    return seeded
