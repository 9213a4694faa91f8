"""`aw worker`: consume BullMQ jobs and sweep, until SIGTERM (graceful) or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

import structlog

from agent_workflow.config import Settings
from agent_workflow.core.errors import ConfigError
from agent_workflow.queue.bullmq_backend import BullWorkerRunner
from agent_workflow.service.queue_depth import queue_depth
from agent_workflow.service.runtime import Runtime, open_runtime
from agent_workflow.telemetry.exposition import process_exiting
from agent_workflow.telemetry.server import metrics_server
from agent_workflow.telemetry.tracing import traced

log = structlog.get_logger(__name__)


async def work(settings: Settings) -> None:
    """Process jobs until a signal asks to stop; running jobs finish or release their lease."""
    if settings.redis_url is None:
        raise ConfigError("aw worker needs AW_REDIS_URL (without it, aw serve routes in-process)")
    # Traces when OTEL_EXPORTER_OTLP_ENDPOINT is set, flushed after the runtime closed.
    async with traced(), open_runtime(settings) as rt, _metrics(settings, rt):
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        runner = BullWorkerRunner(
            settings.redis_url,
            settings.queue_name,
            rt.handler,
            prefix=settings.queue_prefix,
            concurrency=settings.concurrency,
            lock_duration_ms=settings.lock_duration_ms,
            stalled_interval_ms=settings.stalled_interval_ms,
            max_stalled_count=settings.max_stalled_count,
            grace_s=settings.shutdown_grace_s,
            worker_name=settings.owner,
        )
        log.info("worker.started", owner=settings.owner, queue=settings.queue_name)
        await asyncio.gather(runner.run(stop), rt.sweeper.run(stop))
        log.info("worker.stopped", owner=settings.owner)


@contextlib.asynccontextmanager
async def _metrics(settings: Settings, rt: Runtime) -> AsyncIterator[None]:
    """This worker's own `/metrics` on `AW_METRICS_PORT` while it runs (unset: none)."""
    try:
        if settings.metrics_port is None:
            yield
            return
        port, depth = settings.metrics_port, queue_depth(rt.queue)
        async with metrics_server(settings.metrics_host, port, depth):
            yield
    finally:
        process_exiting()
