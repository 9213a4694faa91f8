"""OpenTelemetry traces of a delivery's path: webhook → route → phase → GitHub requests.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set (`setup_tracing`): then `aw serve` and
`aw worker` export spans over OTLP/HTTP (the standard `OTEL_*` variables configure the
exporter; `OTEL_SERVICE_NAME` defaults to `agent-workflow`). Off, each span helper is one
`None` check and opentelemetry is never imported. Only this module imports it.

Every attribute is a value of a closed set or a bounded id (an event name GitHub
documents, a route template, a delivery GUID, a task id): never payload text, an issue's
title or a raw path, whatever the sender wrote. The trace crosses the queue as a W3C
`traceparent` in the route job's data (`trace_context`, `parent_of`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from agent_workflow.telemetry.forge_routes import route_of

if TYPE_CHECKING:  # the packages are an optional extra (`otel`)
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

log = structlog.get_logger(__name__)

ENDPOINT_VAR = "OTEL_EXPORTER_OTLP_ENDPOINT"
SERVICE_NAME_VAR = "OTEL_SERVICE_NAME"
DEFAULT_SERVICE_NAME = "agent-workflow"
TRACEPARENT = "traceparent"
"""The key of the W3C trace context in a route job's data."""

# The events the ingress stores or answers; any other name is `other` on a span.
_EVENTS = frozenset(
    {
        "ping",
        "push",
        "issues",
        "issue_comment",
        "pull_request",
        "pull_request_review",
        "pull_request_review_comment",
        "check_suite",
        "check_run",
        "workflow_run",
        "installation",
        "installation_repositories",
    }
)
# A delivery id as the ingress accepts it; a longer stored one is `other`.
_DELIVERY_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
OTHER = "other"

_tracer: Tracer | None = None  # None: tracing off, every helper does nothing


class TraceSpan:
    """One span as the product sees it: bounded attributes set on it, nothing else."""

    def __init__(self, span: Span | None) -> None:
        self._span = span

    @property
    def recording(self) -> bool:
        """False while tracing is off: an attribute costly to work out can be skipped."""
        return self._span is not None

    def set(self, key: str, value: str | int | bool) -> None:
        """Set one attribute (the caller passes only closed or bounded values)."""
        if self._span is not None:
            self._span.set_attribute(key, value)


NO_SPAN = TraceSpan(None)
"""What every helper yields while tracing is off."""


class Tracing:
    """The configured provider, to flush and shut down at exit (None: nothing to do)."""

    def __init__(self, provider: TracerProvider | None) -> None:
        self._provider = provider

    @property
    def enabled(self) -> bool:
        """True when spans are exported."""
        return self._provider is not None

    def shutdown(self) -> None:
        """Export what is buffered, stop the export thread, and turn tracing off."""
        global _tracer
        if self._provider is None:
            return
        _tracer = None
        self._provider.shutdown()


def setup_tracing() -> Tracing:
    """Export spans over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; else nothing
    (nothing imported). Without the `otel` extra installed: one warning, no tracing."""
    if not os.environ.get(ENDPOINT_VAR):
        return Tracing(None)
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        log.warning(
            "tracing.unavailable",
            reason=f"{ENDPOINT_VAR} is set but {exc.name or 'opentelemetry'} is not installed "
            "(pip install 'agent-workflow[otel]'); running untraced",
        )
        return Tracing(None)
    service = os.environ.get(SERVICE_NAME_VAR) or DEFAULT_SERVICE_NAME
    tracing = configure_tracing(OTLPSpanExporter(), service_name=service)
    log.info("tracing.enabled", service=service)
    return tracing


def configure_tracing(
    exporter: SpanExporter, *, service_name: str = DEFAULT_SERVICE_NAME, batch: bool = True
) -> Tracing:
    """Send this process's spans to `exporter` (batched; `batch=False` exports each span as
    it ends, for tests). The provider is this module's own, not the global one."""
    global _tracer
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    _tracer = provider.get_tracer("agent_workflow")
    return Tracing(provider)


@contextlib.asynccontextmanager
async def traced() -> AsyncIterator[Tracing]:
    """`setup_tracing` for a process's lifetime; at exit the buffered spans are flushed
    (off the event loop: the exporter's requests are blocking)."""
    tracing = setup_tracing()
    try:
        yield tracing
    finally:
        await asyncio.to_thread(tracing.shutdown)


@contextlib.contextmanager
def _span(
    name: str, attributes: Mapping[str, str | int | bool], *, context: Context | None = None
) -> Iterator[TraceSpan]:
    tracer = _tracer
    if tracer is None:
        yield NO_SPAN
        return
    from opentelemetry.trace import StatusCode

    # An exception's message may quote what GitHub or a sender wrote: a failed span
    # records the exception's type only, never its message or traceback.
    with tracer.start_as_current_span(
        name,
        context=context,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield TraceSpan(span)
        except BaseException as exc:
            span.set_status(StatusCode.ERROR)
            span.set_attribute("error.type", type(exc).__name__)
            raise


def webhook_span() -> contextlib.AbstractContextManager[TraceSpan]:
    """One webhook request, from its first byte to its answer (a new trace)."""
    return _span("webhook", {}, context=_root())


def event_name(event: str) -> str:
    """A GitHub event name as a span shows it: one the ingress knows, else `other`."""
    return event if event in _EVENTS else OTHER


def delivery_id(value: str) -> str:
    """A delivery id as a span shows it: as the ingress accepts them, else `other`."""
    return value if _DELIVERY_ID.fullmatch(value) else OTHER


def trace_context() -> dict[str, str]:
    """The current span's W3C `traceparent`, for a job's data (empty when untraced)."""
    if _tracer is None:
        return {}
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return {TRACEPARENT: carrier[TRACEPARENT]} if TRACEPARENT in carrier else {}


def _root() -> Context | None:
    """An empty context: a job's span never inherits whatever span the task that runs
    it was created under (the embedded queue starts a job's task inside the webhook's)."""
    if _tracer is None:
        return None
    from opentelemetry.context import Context

    return Context()


def _parent_of(data: Mapping[str, Any]) -> Context | None:
    """The trace context a job carries, else an empty one (a new trace)."""
    if _tracer is None:
        return None
    from opentelemetry.context import Context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    value = data.get(TRACEPARENT)
    if not isinstance(value, str) or not _TRACEPARENT.fullmatch(value):
        return Context()
    return TraceContextTextMapPropagator().extract({TRACEPARENT: value}, context=Context())


def route_span(
    data: Mapping[str, Any], delivery: str
) -> contextlib.AbstractContextManager[TraceSpan]:
    """Routing one stored delivery: a child of its webhook's span when the job carries one."""
    return _span("route", {"delivery.id": delivery_id(delivery)}, context=_parent_of(data))


def resume_span(task_id: int, phase: str) -> contextlib.AbstractContextManager[TraceSpan]:
    """A phase job (the sweeper's): driving one phase from its recovery point (a new trace)."""
    return _span("resume", {"task.id": task_id, "phase": phase}, context=_root())


def phase_span(
    task_id: int, phase: str, attempt: int, stage: str
) -> contextlib.AbstractContextManager[TraceSpan]:
    """One claimed phase attempt: its agent run and effects (`run`), or its outstanding
    effects only (`effects`)."""
    return _span(
        "phase", {"task.id": task_id, "phase": phase, "phase.attempt": attempt, "stage": stage}
    )


def github_span(method: str, path: str) -> contextlib.AbstractContextManager[TraceSpan]:
    """One request sent to GitHub, by its route template, inside a delivery's trace only
    (polls and lookups outside one would each be a trace of a single span)."""
    if _tracer is None:
        return contextlib.nullcontext(NO_SPAN)
    from opentelemetry import trace

    if not trace.get_current_span().get_span_context().is_valid:
        return contextlib.nullcontext(NO_SPAN)
    method = method.upper()
    return _span(
        "github",
        {
            "http.request.method": method if method in _METHODS else OTHER,
            "url.template": route_of(path),
        },
    )
