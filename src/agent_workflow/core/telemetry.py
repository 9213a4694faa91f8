"""The port through which the core reports what it did, for metrics and traces
(`agent_workflow.telemetry`).

The core imports no metrics or tracing library: the ledger and the runner call this
protocol, one line per event, and `service.runtime` wires the implementation in. Every
argument is a value of a closed set (a phase, an effect kind, a fixed word) or an id, so
nothing the core reports can grow a metric's label set or carry an issue's text into a
span. `NO_TELEMETRY` (the default) drops it all.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Literal, Protocol

from agent_workflow.core.effects import EffectKind
from agent_workflow.core.model import Phase

EffectResult = Literal["performed", "reconciled", "adopted", "terminal"]
"""performed: sent and recorded done; reconciled: an uncertain effect was looked for on the
forge; adopted: it was found there and recorded done without a request; terminal: the forge
refused it for good (the row is `refused`, never sent again)."""

AgentMode = Literal["fresh", "resume"]
"""As `agent_runs.mode` records it."""

LeaseStage = Literal["agent", "effects"]
"""What the worker was doing when its lease went: running the agent, or the effects."""

PhaseStage = Literal["run", "effects"]
"""What a claim covers: the agent's run and then its effects, or outstanding effects only."""

NoteOutcome = Callable[[str], None]
"""Told how a traced phase attempt left the phase (an `Executed` or `PhaseStatus` value)."""


class Telemetry(Protocol):
    """What the core reports; implementations must be cheap and never raise."""

    def agent_started(self, phase: Phase, mode: AgentMode) -> None:
        """An agent run started (its audit row was written under the fence)."""
        ...

    def attempt_finished(self, phase: Phase, outcome: str, seconds: float) -> None:
        """An agent run's result was recorded: the phase status it left (`complete`,
        `blocked`, `failed`, or `pending` after an agent error) and how long it ran."""
        ...

    def effect(self, kind: EffectKind, result: EffectResult) -> None:
        """The ledger did one step of an effect (see `EffectResult`)."""
        ...

    def uncertain(self, kind: EffectKind) -> None:
        """A mutation's outcome was uncertain (5xx, timeout, dropped connection)."""
        ...

    def lease_lost(self, phase: Phase, stage: LeaseStage) -> None:
        """This worker found its lease gone and stopped (G5)."""
        ...

    def phase_span(
        self, task_id: int, phase: Phase, attempt: int, stage: PhaseStage
    ) -> AbstractContextManager[NoteOutcome]:
        """Around one claimed phase attempt (a trace span, when traced); what it yields
        is told the attempt's outcome."""
        ...


class NoTelemetry:
    """Reports nothing: the default where no metrics are wired (unit tests, tools)."""

    def agent_started(self, phase: Phase, mode: AgentMode) -> None:
        """Nothing."""

    def attempt_finished(self, phase: Phase, outcome: str, seconds: float) -> None:
        """Nothing."""

    def effect(self, kind: EffectKind, result: EffectResult) -> None:
        """Nothing."""

    def uncertain(self, kind: EffectKind) -> None:
        """Nothing."""

    def lease_lost(self, phase: Phase, stage: LeaseStage) -> None:
        """Nothing."""

    def phase_span(
        self, task_id: int, phase: Phase, attempt: int, stage: PhaseStage
    ) -> AbstractContextManager[NoteOutcome]:
        """Nothing around it; the outcome is dropped."""
        return nullcontext(_ignore)


def _ignore(_outcome: str) -> None:
    """Drops an outcome."""


NO_TELEMETRY: Telemetry = NoTelemetry()
