"""The `Agent` protocol: run one phase attempt under a session id, or resume it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from agent_workflow.core.model import Phase


class Outcome(StrEnum):
    """How an agent run ended."""

    SUCCESS = "success"  # the phase's work is done; `text` is the plan/summary
    BLOCKED = "blocked"  # the agent cannot finish (said so, or ran out of budget/turns)
    ERROR = "error"  # something broke; the phase may be tried again (resuming the session)


@dataclass(frozen=True)
class AgentRequest:
    """Everything an agent needs for one phase attempt.

    `resume` is true when this run takes over an earlier holder of the same
    attempt: the agent should resume `session_id` if its transcript exists,
    and otherwise start it fresh and report `restarted=True`.
    """

    task_id: int
    repo: str
    issue_number: int
    phase: Phase
    attempt: int
    session_id: str
    resume: bool
    title: str
    body: str  # the issue text, already cleaned of hidden content
    clone_url: str
    default_branch: str
    branch: str
    plan: str = ""  # the approved plan (deliver) or the delivered summary (compound)
    pr_number: int | None = None
    budget_left_usd: float | None = None  # what remains of the task's cap across attempts


@dataclass(frozen=True)
class AgentResult:
    """What an agent run produced, with its cost."""

    outcome: Outcome
    text: str = ""
    reason: str = ""  # for BLOCKED and ERROR
    artifacts: dict[str, str] = field(default_factory=dict)  # e.g. {"head_sha": ...}
    session_id: str = ""
    restarted: bool = False  # resume was asked but the transcript was gone
    cost_usd: float = 0.0
    turns: int = 0
    duration_s: float = 0.0
    terminal_reason: str = ""


@runtime_checkable
class Agent(Protocol):
    """A coding agent. Must be cancellable: a worker that loses its lease cancels the run."""

    async def run(self, request: AgentRequest) -> AgentResult:
        """Run (or resume) the phase and report how it ended."""
        ...
