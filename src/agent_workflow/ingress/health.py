"""The liveness probe behind `GET /healthz`: can we reach the database right now?"""

from __future__ import annotations

import asyncio

import structlog

from agent_workflow.store import Store

log = structlog.get_logger(__name__)

# Load balancers probe every few seconds; a hung connection attempt must read as
# "unhealthy", not hold the probe open until the balancer's own timeout.
HEALTH_TIMEOUT_S = 2.0


async def database_ok(store: Store, timeout_s: float = HEALTH_TIMEOUT_S) -> bool:
    """True when a trivial query (`SELECT 1`) succeeds within `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s):
            await store.ping()
    except Exception as exc:  # any failure means unhealthy; the probe itself must not fail
        log.warning("healthz.database_failed", error=f"{type(exc).__name__}: {exc}")
        return False
    return True
