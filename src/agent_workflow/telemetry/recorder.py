"""What the parts of the product record, as calls with closed arguments.

`PrometheusTelemetry` implements the core's port (`core.telemetry.Telemetry`): metrics,
and the `phase` span of a trace (`tracing`, when on). The adapters (forge, model proxy,
ingress, service) call the functions below. Each maps its arguments onto bounded label
values before touching a metric.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Literal, ParamSpec

import structlog

from agent_workflow.core.effects import EffectKind
from agent_workflow.core.model import Phase, PhaseStatus
from agent_workflow.core.runner import Executed
from agent_workflow.core.telemetry import (
    AgentMode,
    EffectResult,
    LeaseStage,
    NoteOutcome,
    PhaseStage,
)
from agent_workflow.telemetry import metrics, tracing
from agent_workflow.telemetry.forge_routes import route_of

# The HTTP methods the adapter sends; anything else would be a bug, not a new label.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
log = structlog.get_logger(__name__)
P = ParamSpec("P")


def _never_raises(record: Callable[P, None]) -> Callable[P, None]:
    """Counting is never the reason a request, a routing or an effect fails: a metric that
    cannot be written (a full disk under `PROMETHEUS_MULTIPROC_DIR`) is logged, not raised."""

    @functools.wraps(record)
    def safe(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            record(*args, **kwargs)
        except Exception:
            log.warning("metrics.record_failed", metric=record.__name__, exc_info=True)

    return safe


# Model families, matched in this order on the model id the API answered with.
_FAMILIES = ("opus", "sonnet", "haiku")

DeliveryOutcome = Literal["received", "duplicate", "ignored", "rejected", "unavailable"]
RequeueKind = Literal["delivery", "phase"]


class PrometheusTelemetry:
    """The core's reports, counted (`core.telemetry.Telemetry`)."""

    @_never_raises
    def agent_started(self, phase: Phase, mode: AgentMode) -> None:
        """Count one agent run."""
        metrics.AGENT_RUNS.labels(phase=Phase(phase).value, mode=mode).inc()

    @_never_raises
    def attempt_finished(self, phase: Phase, outcome: str, seconds: float) -> None:
        """Observe an agent run's duration by the status it left."""
        phase = Phase(phase)
        histogram = metrics.ROUND_DURATION if phase.is_round else metrics.PHASE_DURATION
        histogram.labels(phase=phase.value, outcome=_status(outcome)).observe(max(seconds, 0.0))

    @_never_raises
    def effect(self, kind: EffectKind, result: EffectResult) -> None:
        """Count one ledger step."""
        metrics.EFFECTS.labels(kind=EffectKind(kind).value, result=result).inc()

    @_never_raises
    def uncertain(self, kind: EffectKind) -> None:
        """Count one uncertain outcome."""
        metrics.UNCERTAIN.labels(kind=EffectKind(kind).value).inc()

    @_never_raises
    def lease_lost(self, phase: Phase, stage: LeaseStage) -> None:
        """Count one lease lost."""
        metrics.LEASES_LOST.labels(phase=Phase(phase).value, stage=stage).inc()

    @contextlib.contextmanager
    def phase_span(
        self, task_id: int, phase: Phase, attempt: int, stage: PhaseStage
    ) -> Iterator[NoteOutcome]:
        """A `phase` span around the attempt (nothing while tracing is off)."""
        with tracing.phase_span(int(task_id), Phase(phase).value, int(attempt), stage) as span:

            def note(outcome: str) -> None:
                span.set("outcome", outcome if outcome in _OUTCOMES else "other")

            yield note


_STATUSES = frozenset(s.value for s in PhaseStatus)
_OUTCOMES = _STATUSES | frozenset(e.value for e in Executed)


def _status(outcome: str) -> str:
    return outcome if outcome in _STATUSES else "other"


@_never_raises
def github_request(method: str, path: str, status: int | None) -> None:
    """One request sent to GitHub: `path` relative to the API's base; `status` None when
    no answer came (a transport error)."""
    method = method.upper()
    metrics.GITHUB_REQUESTS.labels(
        method=method if method in _METHODS else "OTHER",
        route=route_of(path),
        status="error" if status is None else str(status if 100 <= status < 600 else 0),
    ).inc()


@_never_raises
def rate_limit_wait(seconds: float) -> None:
    """One wait for a GitHub rate limit."""
    metrics.RATE_LIMIT_WAITS.inc()
    metrics.RATE_LIMIT_WAITED.inc(max(seconds, 0.0))


def model_family(model: str) -> str:
    """`opus`, `sonnet`, `haiku` or `other`: the model id itself is not a label."""
    lowered = model.lower()
    for family in _FAMILIES:
        if family in lowered:
            return family
    return "other"


@_never_raises
def model_usage(
    phase: Phase,
    model: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_creation_tokens: int,
    cache_read_tokens: int,
    cost_usd: float,
) -> None:
    """One model response's final usage, as the proxy metered it."""
    labels = {"phase": Phase(phase).value, "model": model_family(model)}
    for kind, count in (
        ("input", input_tokens),
        ("output", output_tokens),
        ("cache_creation", cache_creation_tokens),
        ("cache_read", cache_read_tokens),
    ):
        if count > 0:
            metrics.MODEL_TOKENS.labels(kind=kind, **labels).inc(count)
    if cost_usd > 0:
        metrics.MODEL_COST.labels(**labels).inc(cost_usd)


@_never_raises
def delivery(outcome: DeliveryOutcome) -> None:
    """One webhook delivery, by what the inbox did (see `metrics.DELIVERIES`)."""
    metrics.DELIVERIES.labels(outcome=outcome).inc()


@_never_raises
def dead_lettered() -> None:
    """One delivery dead-lettered."""
    metrics.DEAD_LETTERED.inc()


@_never_raises
def routing_started(waited_s: float) -> None:
    """A worker starts routing a delivery received `waited_s` ago."""
    metrics.ROUTING_LATENCY.observe(max(waited_s, 0.0))


@_never_raises
def requeued(kind: RequeueKind, count: int) -> None:
    """The sweeper re-enqueued `count` jobs of `kind` (`delivery` or `phase`)."""
    if count:
        metrics.SWEEPER_REQUEUES.labels(kind=kind).inc(count)
