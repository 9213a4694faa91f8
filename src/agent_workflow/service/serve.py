"""`aw serve`: the webhook ingress, plus (embedded mode) routing in-process and the sweeper."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import structlog
import uvicorn

from agent_workflow.asgi_server import QuietServer, listen, wait_started
from agent_workflow.config import Settings
from agent_workflow.core.errors import ConfigError
from agent_workflow.core.ports import Agent, Forge
from agent_workflow.dashboard.app import dashboard_for
from agent_workflow.ingress.app import create_app
from agent_workflow.ingress.repo_triggers import RepoTriggers
from agent_workflow.service.backfill import backfill_for
from agent_workflow.service.jobs import route_job
from agent_workflow.service.queue_depth import queue_depth
from agent_workflow.service.runtime import open_runtime
from agent_workflow.telemetry.exposition import process_exiting
from agent_workflow.telemetry.tracing import traced

log = structlog.get_logger(__name__)


async def serve(
    settings: Settings,
    *,
    forge: Forge | None = None,
    agent: Agent | None = None,
    started: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
    handle_signals: bool = False,
) -> None:
    """Serve until `stop` is set (or SIGTERM/SIGINT with `handle_signals`).

    On start it recovers everything left unfinished. On stop it stops accepting
    webhooks, lets running jobs finish for `AW_SHUTDOWN_GRACE_S`, then cancels them,
    which releases their leases so the next start resumes them at once.
    """
    secret = settings.require_webhook_secret()
    try:
        sock = listen(settings.host, settings.port)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {settings.host}:{settings.port} (AW_HOST, AW_PORT): {exc.strerror}"
        ) from exc
    stop = stop or asyncio.Event()
    if handle_signals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    with sock:
        # Traces when OTEL_EXPORTER_OTLP_ENDPOINT is set, flushed after the runtime closed.
        async with traced(), open_runtime(settings, forge=forge, agent=agent) as rt:

            async def on_accepted(delivery_id: str, hook_id: str) -> None:
                job_id, data = route_job(delivery_id, hook_id)
                await rt.queue.enqueue(job_id, data)

            app = create_app(
                rt.store,
                on_accepted,
                secret=secret,
                max_body_bytes=settings.webhook_max_body_bytes,
                triggers=rt.triggers,
                body_timeout_s=settings.webhook_body_timeout_s,
                on_push=rt.repo_configs.invalidate_from_push,
                queue_depth=queue_depth(rt.queue),
                own_login=rt.own_login,
            )

            async def redispatch(delivery_id: str, hook_id: str) -> None:
                # A re-driven dead letter's finished job still holds its id under BullMQ.
                job_id, data = route_job(delivery_id, hook_id)
                await rt.queue.enqueue(job_id, data, replace_finished=True)

            dashboard = dashboard_for(settings, rt.store, redispatch)
            if dashboard is not None:  # AW_DASHBOARD_TOKEN unset: no /dashboard at all (404)
                app.mount("/dashboard", dashboard)
            server = QuietServer(
                uvicorn.Config(
                    app,
                    log_config=None,  # its records go to the root handler (agent_workflow.logs)
                    log_level="warning",
                    lifespan="off",
                    access_log=False,
                    # Hostile input: past this many connections uvicorn answers 503 at
                    # once; a slow body is cut off by the ingress's read deadline and an
                    # idle keep-alive connection after uvicorn's 5 s default.
                    limit_concurrency=settings.max_connections,
                ),
                # Headers get the deadline a body gets (GitHub's own delivery timeout).
                head_timeout_s=settings.webhook_body_timeout_s,
            )
            embedded = settings.redis_url is None
            if embedded:
                # Unrouted deliveries, expired leases and outstanding effects of the last run.
                # Never fatal: a failing recovery is logged and the periodic sweep retries.
                try:
                    counts = await rt.sweeper.run_once(grace_s=0)
                except Exception:
                    log.exception("serve.recovery_failed")
                else:
                    log.info(
                        "serve.recovered",
                        deliveries=counts.deliveries,
                        phases=counts.phases,
                        failed=counts.failed,
                    )
            sweeping = asyncio.Event()  # set: the sweeper (and the backfill) stop
            sweeper = asyncio.create_task(rt.sweeper.run(sweeping))
            # Only here, never in `aw worker`: one reader of GitHub's delivery log per
            # deployment's ingress, starting at once (what was missed while down).
            repo_triggers = RepoTriggers(rt.triggers, rt.repo_configs)
            backfill = backfill_for(
                settings, rt.store, rt.forge, rt.queue, repo_triggers, rt.own_login
            )
            backfilling = asyncio.create_task(
                backfill.run(sweeping) if backfill is not None else sweeping.wait()
            )
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            stopper = asyncio.create_task(_stop_when(stop, server))
            try:
                await wait_started(server, serving, sock)
                log.info(
                    "serve.listening",
                    host=settings.host,
                    port=settings.port,
                    mode="embedded" if embedded else "bullmq",
                )
                if started is not None:
                    started.set()
                await serving
            finally:
                stopper.cancel()
                sweeping.set()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
                with contextlib.suppress(asyncio.CancelledError):
                    await backfilling
            log.info("serve.stopping", grace_s=settings.shutdown_grace_s)
        # Leaving open_runtime closed the queue: running jobs finished or released.
    process_exiting()
    log.info("serve.stopped")


async def _stop_when(stop: asyncio.Event, server: uvicorn.Server) -> None:
    await stop.wait()
    server.should_exit = True
