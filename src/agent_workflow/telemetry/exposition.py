"""The `/metrics` page: Prometheus' text format, for this process or for the whole host.

Without `PROMETHEUS_MULTIPROC_DIR` every process shows its own counts. With it (the
library's own convention: a directory every process of the host writes its values to,
emptied before they start) `aw serve`'s page shows the sum over every process of the
host — itself and each `aw worker` — while a worker's own page (`AW_METRICS_PORT`)
keeps showing that worker alone. The queue's depth is read at scrape time.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from agent_workflow.telemetry.metrics import REGISTRY

log = structlog.get_logger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

QueueDepth = Callable[[], Awaitable[Mapping[str, int]]]
"""Jobs in the queue by state (`waiting`, `active`, …), read when a scrape asks."""


def multiprocess_dir() -> str | None:
    """The host's shared metrics directory, when the processes share one."""
    return os.environ.get(MULTIPROC_ENV) or None


class _Scrape(Collector):
    """One scrape: the metrics (this process's, or the host's) and the queue's depth."""

    def __init__(self, sources: Iterable[Collector], depth: Mapping[str, int] | None) -> None:
        self._sources = tuple(sources)
        self._depth = depth

    def collect(self) -> Iterable[Metric]:
        for source in self._sources:
            yield from source.collect()
        if self._depth is not None:
            family = GaugeMetricFamily(
                "aw_queue_jobs",
                "Jobs in the queue by state, read at scrape time (embedded: queued, running; "
                "BullMQ: waiting, active, delayed, prioritized, failed).",
                labels=["state"],
            )
            for state, count in sorted(self._depth.items()):
                family.add_metric([state], count)
            yield family


async def render(queue_depth: QueueDepth | None = None, *, host_wide: bool = False) -> bytes:
    """The exposition text. `host_wide`: the sum of the host's processes when
    `PROMETHEUS_MULTIPROC_DIR` is set (else this process, as without it)."""
    depth = None
    if queue_depth is not None:
        try:
            depth = await queue_depth()
        except Exception as exc:  # a scrape still answers without the queue (e.g. Redis down)
            log.warning("metrics.queue_depth_failed", error=f"{type(exc).__name__}: {exc}")
    directory = multiprocess_dir()
    registry: CollectorRegistry = REGISTRY
    if host_wide and directory is not None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    # Off the event loop: with a shared directory it reads every process's files, and the
    # loop it would block answers GitHub's webhooks.
    return await asyncio.to_thread(generate_latest, _Scrape([registry], depth))


def metrics_endpoint(
    queue_depth: QueueDepth | None = None, *, host_wide: bool
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint for `GET /metrics`."""

    async def metrics(_request: Request) -> Response:
        body = await render(queue_depth, host_wide=host_wide)
        return Response(body, media_type=CONTENT_TYPE)

    return metrics


def process_exiting() -> None:
    """Tell the shared directory this process is gone (its live gauges no longer count;
    its counters keep counting in the sum, as counters must). Nothing without one."""
    directory = multiprocess_dir()
    if directory is not None:
        mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]
