"""Builders for core tests: events, a wired core over the in-memory twins."""

from __future__ import annotations

import itertools

from agent_workflow.agents.scripted import ScriptedAgent
from agent_workflow.core.model import Event, Intent
from agent_workflow.core.runner import RunnerSettings
from agent_workflow.core.wiring import Core, build_core
from agent_workflow.forge.memory import MemoryForge
from agent_workflow.store import Store
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
