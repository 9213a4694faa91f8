"""A worker's own `/metrics` listener (`AW_METRICS_PORT`): one route, in this event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route

from agent_workflow.asgi_server import QuietServer, base_url, listen, wait_started
from agent_workflow.core.errors import ConfigError
from agent_workflow.telemetry.exposition import QueueDepth, metrics_endpoint

log = structlog.get_logger(__name__)


@contextlib.asynccontextmanager
async def metrics_server(
    host: str, port: int, queue_depth: QueueDepth | None = None
) -> AsyncIterator[str]:
    """Serve `GET /metrics` (this process's counts) on `host:port` until the block ends;
    yields the base URL. Raises `ConfigError` when the port cannot be bound."""
    try:
        sock = listen(host, port)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port} (AW_METRICS_HOST, AW_METRICS_PORT): {exc.strerror}"
        ) from exc
    app = Starlette(
        routes=[Route("/metrics", metrics_endpoint(queue_depth, host_wide=False), methods=["GET"])]
    )
    server = QuietServer(
        uvicorn.Config(app, log_config=None, log_level="warning", access_log=False, lifespan="off")
    )
    with sock:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        await wait_started(server, task, sock)
        url = base_url(host, sock)
        log.info("metrics.listening", url=f"{url}/metrics")
        try:
            yield url
        finally:
            server.should_exit = True
            await task
