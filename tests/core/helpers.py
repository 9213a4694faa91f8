"""Builders for core tests: a wired core, phase runs seeded as a dead worker left them.

Events come from `tests.support.events`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.sql import FromClause

from agent_workflow.agents.claude import DEFAULT_LIMITS
from agent_workflow.core.effects import Markers
from agent_workflow.core.limits import AgentLimits
from agent_workflow.core.model import Phase, PhaseRun, PhaseStatus, Task
from agent_workflow.core.ports import AgentResult, Forge, Outcome
from agent_workflow.core.repo_settings import NoRepoConfigs, PhaseLimits, RepoConfigs
from agent_workflow.core.rounds import RoundLimits
from agent_workflow.core.runner import RunnerSettings
from agent_workflow.core.wiring import Core, build_core
from agent_workflow.store import Store
from agent_workflow.testing.agent import ScriptedAgent
from agent_workflow.testing.forge import MemoryForge
from tests.conftest import PERMISSION_TTL_S, ROUND_LIMITS, FakeClock
from tests.support.events import BOT, task_info

__all__ = [
    "LEASE_S",
    "MARKERS",
    "MARKER_SECRET",
    "UNLIMITED",
    "Seeded",
    "count_rows",
    "make_core",
    "seed_claimed",
    "seed_finished",
]

LEASE_S = 30.0
UNLIMITED = AgentLimits(max_agents=1_000, max_agents_per_repo=1_000, daily_budget_usd=None)
"""Limits no scenario here reaches (each test of the limits passes its own)."""
DEPLOYMENT_DOMAINS = ("pypi.org", "files.pythonhosted.org")
"""What the cores built here allow sandboxed commands to reach (a repository may narrow it)."""
MARKER_SECRET = b"core-tests-marker-secret"
MARKERS = Markers(MARKER_SECRET)
"""How the cores built here sign their effect markers."""


def make_core(
    store: Store,
    clock: FakeClock,
    *,
    forge: Forge | None = None,
    agent: ScriptedAgent | None = None,
    owner: str = "worker-a",
    round_limits: RoundLimits = ROUND_LIMITS,
    progress_interval_s: float | None = None,
    pr_draft: bool = False,
    limits: AgentLimits | None = None,
    repo_configs: RepoConfigs | None = None,
    phase_limits: Mapping[Phase, PhaseLimits] | None = None,
) -> Core:
    """A core over `forge` (the memory twin by default) with a fake clock and no backoff.

    Live progress is off unless `progress_interval_s` is given: the scenarios here count
    each phase's own GitHub calls and comments exactly; `test_progress.py` counts the
    progress comment's calls beside them."""
    return build_core(
        store,
        forge or MemoryForge(),
        agent or ScriptedAgent(),
        RunnerSettings(
            owner=owner,
            lease_s=LEASE_S,
            heartbeat_s=LEASE_S / 3,
            max_failures=3,
            task_budget_usd=None,
            progress_interval_s=progress_interval_s,
            pr_draft=pr_draft,
            limits=limits or UNLIMITED,
            phase_limits=DEFAULT_LIMITS if phase_limits is None else phase_limits,
            allowed_domains=DEPLOYMENT_DOMAINS,
        ),
        clock=clock,
        own_login=BOT,
        marker_secret=MARKER_SECRET,
        uncertain_backoff_s=0.0,
        permission_ttl_s=PERMISSION_TTL_S,
        round_limits=round_limits,
        repo_configs=repo_configs or NoRepoConfigs(),
    )


async def count_rows(store: Store, table: FromClause) -> int:
    """Rows in one table."""
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


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
    task = await store.tasks.ensure(task_info(issue), clock())
    run = await store.phases.ensure(task.id, Phase.PLAN, "d-1", clock())
    claimed = await store.phases.claim(run.task_id, run.phase, owner, LEASE_S, clock())
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
    issue: int = 7,
) -> Seeded:
    """The plan phase finished by `owner`, which still holds the lease for the effects."""
    seeded = await seed_claimed(store, clock, owner=owner, issue=issue)
    assert seeded.agent_run_id is not None
    await store.phases.finish(
        seeded.run.guard,
        seeded.agent_run_id,
        status,
        AgentResult(Outcome.SUCCESS, text=text, reason=reason),
        max_failures=3,
        effects_lease_s=LEASE_S,
        now=clock(),
    )
    return seeded
