"""Shared pieces of the real-agent tests: the world, events, the core, scripts, queries.

The agent is the real `ClaudeAgent` (the Claude Code CLI bundled with
claude-agent-sdk) talking to `FakeAnthropic`; GitHub is the emulator reached
through `GitHubForge`; the remote is a bare repository whose path is the
issue's `clone_url`. Time is the wall clock: the CLI runs take real time.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from agent_workflow.agents.claude import DEFAULT_LIMITS, ClaudeAgent, ClaudeConfig, PhaseLimits
from agent_workflow.agents.compound import solution_slug
from agent_workflow.core.clock import now
from agent_workflow.core.limits import AgentLimits
from agent_workflow.core.model import Event, Intent, Phase
from agent_workflow.core.repo_settings import NoRepoConfigs
from agent_workflow.core.runner import RunnerSettings, session_id_for
from agent_workflow.core.wiring import Core, build_core
from agent_workflow.forge.github import GitHubForge
from agent_workflow.forge.policy import RequestPolicy
from agent_workflow.store import Store
from agent_workflow.store.schema import agent_runs, phase_runs
from agent_workflow.workspace import Workspace
from github_emulator import CommentView, EmulatorServer
from tests.conftest import PERMISSION_TTL_S, ROUND_LIMITS
from tests.support.events import event
from tests.support.fake_anthropic import (
    FakeAnthropic,
    Reply,
    Responder,
    Script,
    all_of,
    call,
    first_time,
    mentions,
    say,
    steps,
)
from tests.support.fake_anthropic.conversation import Conversation

TOKEN = "e2e-claude-token"
BOT = "agent-workflow[bot]"  # the emulator's login for TOKEN
REPO = "octo/widgets"
TRUSTED = "alice"
TITLE = "Add a perimeter function"
LEASE_S = 30.0
MARKER_SECRET = "e2e-claude-marker-secret"  # every core and worker child signs with it

FILES = {
    "README.md": "# widgets\n\nA small library of widgets.\n",
    "widgets/__init__.py": "def area(w, h):\n    return w * h\n",
}

# What the scripted model says and writes, phase by phase.
PLAN_TEXT = "1. Add `perimeter(w, h)` in widgets/perimeter.py.\n2. Test it with two rectangles."
PERIMETER_PATH = "widgets/perimeter.py"
PERIMETER = "def perimeter(w, h):\n    return 2 * (w + h)\n"
DELIVER_SUMMARY = "Added `perimeter(w, h)` in widgets/perimeter.py."
LESSON = "# perimeter\n\nGeometry helpers get a module each; tests sit beside them.\n"
LESSONS_SUMMARY = "Geometry helpers get a module each."

# Sentences of the phase prompts (src/agent_workflow/agents/prompts/*.md) that tell
# the fake which phase is asking. A resumed session resends its first prompt, so
# these keep matching after a resume.
PLAN_PROMPT = "You are planning the work"
DELIVER_PROMPT = "You are implementing issue"
COMPOUND_PROMPT = "has been merged."
REVISE_PROMPT = "You are revising pull request"


@dataclass
class World:
    """One test's emulated GitHub, fake model, bare remote and directories."""

    fake: FakeAnthropic
    emu: EmulatorServer
    forge: GitHubForge
    remote: str  # the bare repository's path: the issue's clone_url
    issue: int
    workspace_dir: Path
    claude_env: dict[str, str] = field(default_factory=dict)

    def event(
        self, intent: Intent, *, delivery: str | None = None, pr_number: int | None = None
    ) -> Event:
        """A parsed event for the world's issue, as the ingress would produce it."""
        return event(
            intent,
            self.issue,
            delivery=delivery,
            actor=TRUSTED,
            repo=REPO,
            pr_number=pr_number,
            body="We need `perimeter(w, h)`.",
            title=TITLE,
            remote=self.remote,
        )

    async def bot_comments(self) -> list[CommentView]:
        """The bot's comments on the issue, oldest first."""
        return [c for c in await self.emu.admin.comments(REPO, self.issue) if c.author == BOT]

    @property
    def branch(self) -> str:
        """The deliver phase's deterministic branch."""
        return f"agent/issue-{self.issue}"

    @property
    def solution_path(self) -> str:
        """Where the compound phase writes the lesson."""
        return f"docs/solutions/{solution_slug(self.issue, TITLE)}.md"


def github_forge(base_url: str) -> GitHubForge:
    """`GitHubForge.from_token` against the emulator, with test-sized waits and no spacing."""
    return GitHubForge.from_token(TOKEN, base_url=base_url, policy=RequestPolicy.fast())


def make_core(
    store: Store,
    world: World,
    *,
    limits: Mapping[Phase, PhaseLimits] | None = None,
    task_budget_usd: float | None = None,
    owner: str = "worker-a",
    lease_s: float = LEASE_S,
) -> Core:
    """The core with the real Claude agent (CLI on the fake) and the adapter on the emulator."""
    config = ClaudeConfig(env=world.claude_env, limits=limits or DEFAULT_LIMITS)
    agent = ClaudeAgent(Workspace(world.workspace_dir), config)
    settings = RunnerSettings(
        owner=owner,
        lease_s=lease_s,
        heartbeat_s=lease_s / 3,
        max_failures=3,
        task_budget_usd=task_budget_usd,
        progress_interval_s=None,  # these scenarios count the phases' own comments
        pr_draft=False,
        limits=AgentLimits(max_agents=1_000, max_agents_per_repo=1_000, daily_budget_usd=None),
        phase_limits=config.limits,
        allowed_domains=config.allowed_domains,
    )
    return build_core(
        store,
        world.forge,
        agent,
        settings,
        clock=now,
        own_login=BOT,
        marker_secret=MARKER_SECRET.encode(),
        uncertain_backoff_s=0.0,
        permission_ttl_s=PERMISSION_TTL_S,
        round_limits=ROUND_LIMITS,
        repo_configs=NoRepoConfigs(),
    )


# -- scripts ---------------------------------------------------------------------------


def _phase_rule(prompt: str) -> Callable[[Conversation], bool]:
    return all_of(lambda c: c.is_main, mentions(prompt))


def killable_deliver_script(world: World) -> Script:
    """The lifecycle with a deliver that writes `a.txt`, then stalls its second Write
    (`b.txt`) 60 s the first time it is asked (the window in which a test kills the worker),
    then summarises."""
    slow_second = call("Write", {"file_path": "b.txt", "content": "b\n"})
    return lifecycle_script(
        world,
        deliver=steps(
            call("Write", {"file_path": "a.txt", "content": "a\n"}),
            first_time(dataclasses.replace(slow_second, delay_s=60), slow_second),
            say("Wrote a.txt and b.txt."),
        ),
    )


def lifecycle_script(
    world: World,
    *,
    deliver: Responder | None = None,
    plan: Reply | Responder | None = None,
    revise: Responder | None = None,
) -> Script:
    """Plan (read, then the plan), deliver (write a file, summarise), compound (write the lesson),
    and `revise` for review rounds when given.

    Rules are checked (revise →) compound → deliver → plan, since later prompts quote
    earlier results.
    """
    script = Script()
    if revise is not None:
        script.on(_phase_rule(REVISE_PROMPT), revise)
    return (
        script.on(
            _phase_rule(COMPOUND_PROMPT),
            steps(
                call("Write", {"file_path": world.solution_path, "content": LESSON}),
                say(LESSONS_SUMMARY),
            ),
        )
        .on(
            _phase_rule(DELIVER_PROMPT),
            deliver
            or steps(
                call("Write", {"file_path": PERIMETER_PATH, "content": PERIMETER}),
                say(DELIVER_SUMMARY),
            ),
        )
        .on(
            _phase_rule(PLAN_PROMPT),
            plan or steps(call("Read", {"file_path": "widgets/__init__.py"}), say(PLAN_TEXT)),
        )
    )


def main_turns(fake: FakeAnthropic, session_id: str) -> list[Conversation]:
    """The agent's own requests of one session, in arrival order."""
    return fake.recorder.main(session_id)


# -- durable state ---------------------------------------------------------------------


@dataclass(frozen=True)
class AgentRunRow:
    """One `agent_runs` row: one start (fresh or resume) of the agent."""

    phase: str
    attempt: int
    fence: int
    session_id: str
    mode: str
    owner: str
    outcome: str | None
    cost_usd: float
    turns: int
    terminal_reason: str | None


async def agent_run_rows(store: Store, task_id: int) -> list[AgentRunRow]:
    """Every agent start of the task, oldest first."""
    query = (
        select(
            phase_runs.c.phase,
            agent_runs.c.attempt,
            agent_runs.c.fence,
            agent_runs.c.session_id,
            agent_runs.c.mode,
            agent_runs.c.owner,
            agent_runs.c.outcome,
            agent_runs.c.cost_usd,
            agent_runs.c.turns,
            agent_runs.c.terminal_reason,
        )
        .join(phase_runs, phase_runs.c.id == agent_runs.c.phase_run_id)
        .where(phase_runs.c.task_id == task_id)
        .order_by(agent_runs.c.id)
    )
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [AgentRunRow(**row._asdict()) for row in rows]


def expected_session(task_id: int, phase: Phase, attempt: int = 1) -> str:
    """The session id the core derives for (task, phase, attempt)."""
    return session_id_for(task_id, phase, attempt)


async def lifecycle_report(store: Store, task_id: int) -> str:
    """Cost, turns and session ids of every phase and agent start of the task, as text."""
    query = (
        select(
            phase_runs.c.phase,
            phase_runs.c.status,
            phase_runs.c.attempt,
            phase_runs.c.session_id,
            phase_runs.c.cost_usd,
            phase_runs.c.turns,
            phase_runs.c.duration_s,
        )
        .where(phase_runs.c.task_id == task_id)
        .order_by(phase_runs.c.id)
    )
    async with store.engine.connect() as conn:
        phases = (await conn.execute(query)).all()
    lines = ["phase_runs:"]
    total_cost, total_turns = 0.0, 0
    for phase, status, attempt, session, cost, turns, duration in phases:
        total_cost += cost
        total_turns += turns
        lines.append(
            f"  {phase:<9} {status:<9} attempt={attempt} session={session} "
            f"cost_usd={cost:.6f} turns={turns} duration_s={duration:.2f}"
        )
    lines.append(f"  total     cost_usd={total_cost:.6f} turns={total_turns}")
    lines.append("agent_runs:")
    for run in await agent_run_rows(store, task_id):
        lines.append(
            f"  {run.phase:<9} {run.mode:<6} session={run.session_id} fence={run.fence} "
            f"outcome={run.outcome} cost_usd={run.cost_usd:.6f} turns={run.turns} "
            f"terminal_reason={run.terminal_reason}"
        )
    return "\n".join(lines)


def worker_child_env(world: World, db_url: str, owner: str, **overrides: str) -> dict[str, str]:
    """The environment of an `aw worker`-like child: this process's, without its AW_*, plus
    the CLI's variables and the child's settings (`overrides` last)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AW_")}
    return {
        **base,
        **world.claude_env,
        "AW_CONFIG_FILE": str(world.workspace_dir.parent / "no-config.toml"),
        "AW_DATABASE_URL": db_url,
        "AW_GITHUB_API_URL": world.emu.url,
        "AW_GITHUB_TOKEN": TOKEN,
        "AW_GITHUB_MUTATION_INTERVAL_S": "0",
        "AW_BOT_LOGIN": BOT,
        "AW_MARKER_SECRET": MARKER_SECRET,
        "AW_AGENT": "claude",
        "AW_WORKSPACE_DIR": str(world.workspace_dir),
        "AW_OWNER": owner,
        "AW_LEASE_S": "30",
        "AW_HEARTBEAT_S": "10",
        **overrides,
    }
