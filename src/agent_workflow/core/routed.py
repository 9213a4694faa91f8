"""What routing did with an event: the value the router, rounds and their callers share."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from agent_workflow.core.model import Phase, PhaseStatus
from agent_workflow.core.runner import Executed, Execution


class Action(StrEnum):
    """What routing did with an event."""

    RAN = "ran"  # a phase was driven forward (see `Routed.result`)
    IGNORED = "ignored"  # the actor may not drive phases (a bot, or no write permission)
    NOOP = "noop"  # nothing to do: already done, held elsewhere, or not yet possible


@dataclass(frozen=True)
class Routed:
    """What routing did, for logs and tests."""

    action: Action
    reason: str = ""
    phase: Phase | None = None
    status: PhaseStatus | None = None
    result: Executed | None = None


def ran(phase: Phase, execution: Execution) -> Routed:
    """A phase was driven forward: how the execution left it."""
    return Routed(Action.RAN, phase=phase, status=execution.status, result=execution.result)
