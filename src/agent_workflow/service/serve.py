"""`aw serve`: the webhook ingress, plus (embedded mode) routing in-process and the sweeper."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
import uvicorn

from agent_workflow.agents.protocol import Agent
from agent_workflow.config import Settings
from agent_workflow.forge.protocol import Forge
from agent_workflow.ingress.app import create_app
from agent_workflow.service.jobs import route_job
from agent_workflow.service.runtime import open_runtime

log = structlog.get_logger(__name__)


async def serve(
    settings: Settings,
    *,
    forge: Forge | None = None,
    agent: Agent | None = None,
    started: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until SIGINT/SIGTERM (or `stop` is set). On start it recovers everything unfinished."""
    secret = settings.require_webhook_secret()
    async with open_runtime(settings, forge=forge, agent=agent) as rt:

        async def on_accepted(delivery_id: str, hook_id: str) -> None:
            job_id, data = route_job(delivery_id, hook_id)
            await rt.queue.enqueue(job_id, data)

        app = create_app(
            rt.store, on_accepted, secret=secret, max_body_bytes=settings.webhook_max_body_bytes
        )
        server = uvicorn.Server(
            uvicorn.Config(
                app, host=settings.host, port=settings.port, log_level="warning", lifespan="off"
            )
        )
        sweeping = asyncio.Event()  # set: the sweeper stops
        embedded = settings.redis_url is None
        if embedded:
            # Unrouted deliveries, expired leases and outstanding effects of the last run.
            counts = await rt.sweeper.run_once(grace_s=0)
            log.info("serve.recovered", deliveries=counts.deliveries, phases=counts.phases)
        sweeper = asyncio.create_task(rt.sweeper.run(sweeping))
        serving = asyncio.create_task(server.serve())
        while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn offers only a flag
            await asyncio.sleep(0.02)
        if serving.done():  # it could not bind: surface the error
            await serving
        log.info(
            "serve.listening",
            host=settings.host,
            port=settings.port,
            mode="embedded" if embedded else "bullmq",
        )
        if started is not None:
            started.set()
        stopper = asyncio.create_task(_stop_when(stop, server))
        try:
            await serving
        finally:
            stopper.cancel()
            sweeping.set()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper


async def _stop_when(stop: asyncio.Event | None, server: uvicorn.Server) -> None:
    """Take the same path as SIGTERM when the embedding code asks to stop."""
    if stop is None:
        return
    await stop.wait()
    server.should_exit = True
