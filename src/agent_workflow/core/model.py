"""The vocabulary of the core: phases, their states, and the events that drive them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

BRANCH_PREFIX = "agent/issue-"
"""A task's branch is this plus the issue number. Not a setting: branches already pushed
and pull requests already open are found by it, so it must never change under them; the
ingress recognises a merged agent pull request by the same prefix."""


class Phase(StrEnum):
    """The phases of a task: three in order, and the rounds after the pull request.

    A round (revise, repair) is a phase whose attempts are its rounds: each round is
    started by one trigger (`RoundTrigger`), runs with the same claim, lease, fence,
    session and ledger as the three phases, and a new round is the next attempt.
    """

    PLAN = "plan"
    DELIVER = "deliver"
    COMPOUND = "compound"
    REVISE = "revise"  # a review asked for changes, or `/agent …` on the pull request
    REPAIR = "repair"  # checks failed on the head commit we pushed

    @property
    def is_round(self) -> bool:
        """True for the phases that run once per trigger after the pull request."""
        return self in (Phase.REVISE, Phase.REPAIR)


LIFECYCLE: tuple[Phase, ...] = (Phase.PLAN, Phase.DELIVER, Phase.COMPOUND)
"""The phases every task walks through once, in order (rounds come between as needed)."""


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
    REVISE = "revise"  # on the task's PR: a `changes_requested` review or `/agent …`
    REPAIR = "repair"  # on the task's PR: checks failed (or `/agent fix ci`)


@dataclass(frozen=True)
class RoundTrigger:
    """What starts one round after the pull request, and the input it carries.

    `key` identifies the round: the same key never starts a second one (a redelivered
    review, a duplicate job). `review:<id>` for a review, `comment:<id>` for a command
    comment, `checks:<sha>` for failing checks on a commit.
    """

    key: str
    review_id: int | None = None
    comment_id: int | None = None  # the `/agent …` comment, or the review comment it is in
    head_sha: str = ""  # repair: the commit whose checks failed
    instruction: str = ""  # the review's body or the command's text, cleaned
    # A command written as a review comment: the thread to answer in (its first comment;
    # GitHub refuses a reply to a reply). None for a command in the PR conversation.
    thread_id: int | None = None


@dataclass(frozen=True)
class Event:
    """A parsed, transport-free event. `delivery_id` identifies the webhook delivery."""

    delivery_id: str
    intent: Intent
    repo: str  # "owner/name" as the payload names it (a renamed repository's new name)
    issue_number: int
    actor: str
    actor_is_bot: bool = False
    title: str = ""
    body: str = ""
    clone_url: str = ""
    default_branch: str = "main"
    pr_number: int | None = None
    # REVISE/REPAIR: what started the round. `issue_number` is 0 when the payload names
    # only the pull request (a comment on it): the router finds the task by `pr_number`.
    round: RoundTrigger | None = None
    # The repository's id (`repository.id`): it survives renames and transfers, so a task
    # is found by it; None only in events stored before it was parsed.
    repo_id: int | None = None
    # The GitHub App installation the event came through (`installation.id`): its token
    # acts for the task. None for a repository webhook (token auth) or an older event.
    installation_id: int | None = None


@dataclass(frozen=True)
class TaskInfo:
    """The issue facts a task is created with (never overwritten once stored)."""

    repo: str
    issue_number: int
    title: str = ""
    body: str = ""
    clone_url: str = ""
    default_branch: str = "main"
    repo_id: int | None = None  # GitHub's id of the repository (None: not known yet)
    installation_id: int | None = None  # the App installation acting for it (None: token auth)

    @property
    def branch(self) -> str:
        """The deterministic branch the deliver phase works on."""
        return f"{BRANCH_PREFIX}{self.issue_number}"


@dataclass(frozen=True)
class Task(TaskInfo):
    """A stored task row. `repo` is the repository's current `owner/name` (updated when
    an event names it otherwise under the same `repo_id`): GitHub calls use it."""

    id: int = 0
    pr_number: int | None = None
    head_sha: str | None = None  # the pull request's head as we last pushed it
    # The `owner/name` the task was created under. Effect keys (and so the markers in
    # what we posted) are named with it: a rename must never change a key, or an effect
    # begun before it would be performed again under a new one.
    key_repo: str = ""
    # Why nothing runs for the task now (its installation suspended or deleted, its
    # repository removed from the installation); None while it may run.
    held_reason: str | None = None

    @property
    def effect_repo(self) -> str:
        """The name effect keys use: the one the task was created under."""
        return self.key_repo or self.repo


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
