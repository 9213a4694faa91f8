"""The vocabulary of the core: phases, their states, and the events that drive them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

BRANCH_PREFIX = "agent/issue-"
"""A task's branch is this plus the issue number. Not a setting: branches already pushed
and pull requests already open are found by it, so it must never change under them; the
ingress recognises a merged agent pull request by the same prefix."""


class Phase(StrEnum):
    """The three phases an issue walks through, in order."""

    PLAN = "plan"
    DELIVER = "deliver"
    COMPOUND = "compound"


class PhaseStatus(StrEnum):
    """Where one (task, phase) stands. Only `attempt` distinguishes retries."""

    PENDING = "pending"  # wants to run; nobody holds it
    ACTIVE = "active"  # a worker holds the lease and runs the agent
    COMPLETE = "complete"  # the agent succeeded; result recorded (effects may be outstanding)
    BLOCKED = "blocked"  # the agent could not finish; a trusted /retry starts a new attempt
    FAILED = "failed"  # gave up after repeated errors; visible with a reason, retryable

    @property
    def is_final(self) -> bool:
        """True when the attempt is over and only its effects may remain."""
        return self in (PhaseStatus.COMPLETE, PhaseStatus.BLOCKED, PhaseStatus.FAILED)


class Intent(StrEnum):
    """What an event asks for, once parsed from the webhook."""

    START_PLAN = "start_plan"
    APPROVE = "approve"
    MERGED = "merged"
    RETRY = "retry"


@dataclass(frozen=True)
class Event:
    """A parsed, transport-free event. `delivery_id` identifies the webhook delivery."""

    delivery_id: str
    intent: Intent
    repo: str  # "owner/name"
    issue_number: int
    actor: str
    actor_is_bot: bool = False
    title: str = ""
    body: str = ""
    clone_url: str = ""
    default_branch: str = "main"
    pr_number: int | None = None


@dataclass(frozen=True)
class TaskInfo:
    """The issue facts a task is created with (never overwritten once stored)."""

    repo: str
    issue_number: int
    title: str = ""
    body: str = ""
    clone_url: str = ""
    default_branch: str = "main"

    @property
    def branch(self) -> str:
        """The deterministic branch the deliver phase works on."""
        return f"{BRANCH_PREFIX}{self.issue_number}"


@dataclass(frozen=True)
class Task(TaskInfo):
    """A stored task row."""

    id: int = 0
    pr_number: int | None = None


@dataclass(frozen=True)
class PhaseRun:
    """A stored phase_runs row."""

    id: int
    task_id: int
    phase: Phase
    status: PhaseStatus
    attempt: int
    fence: int
    lease_owner: str | None
    lease_until: float | None
    session_id: str | None
    trigger_delivery: str | None
    failures: int
    effects_done: bool
    result_text: str | None
    blocked_reason: str | None
    artifacts: dict[str, str] = field(default_factory=dict)
    cost_usd: float = 0.0
    turns: int = 0
    # An agent session of the current attempt was started before (an audit row exists):
    # the next claim resumes it instead of starting a second one (G2).
    session_started: bool = False
    plan_text: str = ""  # the task's plan (deliver and compound work from it)
    task_cost_usd: float = 0.0  # what the task's phases have cost so far

    @property
    def guard(self) -> Guard:
        """The fencing pair of this row as read."""
        return Guard(self.id, self.fence)


@dataclass(frozen=True)
class IssueState:
    """An issue's task and its phase runs, read together (the router's fast path)."""

    task: Task
    runs: dict[Phase, PhaseRun]


@dataclass(frozen=True)
class Guard:
    """The fencing pair every write that matters carries: `AND fence = ?` (G5)."""

    run_id: int
    fence: int
