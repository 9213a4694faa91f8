"""The HTTP front door: `POST /webhooks/github` and `GET /healthz` (DESIGN §4.1, G4).

A delivery is acknowledged with 202 only after its inbox row is committed, so
an acknowledged webhook is never lost even if the process dies the next
instant. GitHub does not retry failed deliveries, which is why dispatching
(`on_accepted`) is best effort: a relay/sweeper re-dispatches any row that
was never routed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agent_workflow.core.clock import now
from agent_workflow.core.errors import BadEvent, ConfigError
from agent_workflow.ingress import payload as payloads
from agent_workflow.ingress.body import BodyRejected, read_limited
from agent_workflow.ingress.events import Ignored, Triggers
from agent_workflow.ingress.health import database_ok
from agent_workflow.ingress.inbox import Deferred, Duplicate, store_delivery
from agent_workflow.ingress.signature import LEGACY_SIGNATURE_HEADER, SIGNATURE_HEADER, verify
from agent_workflow.store import Store
from agent_workflow.telemetry import recorder, tracing
from agent_workflow.telemetry.exposition import QueueDepth, metrics_endpoint

log = structlog.get_logger(__name__)

OnAccepted = Callable[[str, str], Awaitable[None]]
"""Called with (delivery_id, hook_id) once a new delivery's row is committed."""
OnPush = Callable[[Mapping[str, Any]], object]
"""Called with a verified `push` payload (a repository's settings file may have changed)."""

WEBHOOK_PATH = "/webhooks/github"
# GitHub gives a receiver 10 s before it marks the delivery failed; dispatching
# is an optimisation (the sweeper catches up), so it may use only a slice of that.
DISPATCH_TIMEOUT_S = 2.0
# What GitHub sends (a GUID; a hook's numeric id) with room to spare, and nothing else:
# anything outside it is refused with 400 and nothing stored, so no header can make a
# stored row unroutable (a job id too long, a key separator) or stretch a log line.
DELIVERY_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
MAX_DELIVERY_ID = 64
HOOK_ID = re.compile(r"[0-9]{0,20}")
MAX_HOOK_ID = 20
MAX_EVENT_NAME = 100  # the `deliveries.event` column's width
# GitHub's payloads nest about six levels deep; anything far deeper is refused with 400
# before it reaches the database (whose JSON types have their own, lower-level limits).
MAX_JSON_DEPTH = 64


@dataclass(frozen=True)
class _Delivery:
    """The GitHub headers that identify one delivery."""

    event: str
    delivery_id: str
    hook_id: str


def create_app(
    store: Store,
    on_accepted: OnAccepted,
    *,
    secret: str,
    max_body_bytes: int,
    triggers: Triggers,
    clock: Callable[[], float] = now,
    dispatch_timeout_s: float = DISPATCH_TIMEOUT_S,
    body_timeout_s: float,
    on_push: OnPush | None = None,
    queue_depth: QueueDepth | None = None,
    own_login: str = "",
) -> Starlette:
    """The ingress ASGI app. Raises `ConfigError` without a secret or with a non-positive cap.

    An empty secret would make every signature check compare against a
    well-known key, so it is refused at start rather than accepted silently.
    `max_body_bytes` and `triggers` come from `Settings` (`AW_WEBHOOK_MAX_BODY_BYTES`,
    `AW_PLAN_LABEL`…); a delivery is parsed here, once, and stored with its `Event`.
    `on_push` sees each verified `push` (the repository settings cache drops what it
    changed); a push starts nothing and is not stored. `GET /metrics` shows the metrics
    (the host's, with `PROMETHEUS_MULTIPROC_DIR`) and `queue_depth`, read per scrape.
    `own_login` is ours: a label our own effects add is not kept for a repository's triggers.
    """
    if not secret:
        raise ConfigError("a webhook secret is required (AW_WEBHOOK_SECRET)")
    if max_body_bytes <= 0:
        raise ConfigError(f"max_body_bytes must be positive, not {max_body_bytes}")
    webhooks = _Webhooks(
        store,
        on_accepted,
        secret,
        max_body_bytes,
        clock,
        dispatch_timeout_s,
        triggers,
        body_timeout_s,
        on_push,
        own_login,
    )

    async def healthz(_request: Request) -> JSONResponse:
        if await database_ok(store):
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "unavailable", "error": "database unreachable"}, 503)

    return Starlette(
        routes=[
            Route(WEBHOOK_PATH, webhooks.handle, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint(queue_depth, host_wide=True), methods=["GET"]),
        ]
    )


@dataclass(frozen=True)
class _Webhooks:
    """The webhook endpoint and its settings."""

    store: Store
    on_accepted: OnAccepted
    secret: str
    max_body_bytes: int
    clock: Callable[[], float]
    dispatch_timeout_s: float
    triggers: Triggers
    body_timeout_s: float
    on_push: OnPush | None
    own_login: str

    async def handle(self, request: Request) -> JSONResponse:
        """Verify, parse, store, dispatch; the status code tells GitHub what happened.
        Traced (when on) as a `webhook` span: the event's name and the outcome, no payload."""
        with tracing.webhook_span() as span:
            response = await self._handle(request, span)
            if span.recording:
                span.set("http.response.status_code", response.status_code)
                span.set("outcome", _outcome(response))
            return response

    async def _handle(self, request: Request, span: tracing.TraceSpan) -> JSONResponse:
        try:
            raw = await read_limited(request, self.max_body_bytes, self.body_timeout_s)
        except BodyRejected as exc:
            # The rest of the body is never read: close the connection rather than
            # let the sender keep it busy (h11 then drops it after the answer).
            response = _refuse(exc.status, str(exc), request.headers)
            response.headers["connection"] = "close"
            return response
        verdict = verify(
            self.secret,
            raw,
            request.headers.get(SIGNATURE_HEADER),
            legacy_header=LEGACY_SIGNATURE_HEADER in request.headers,
        )
        if not verdict.ok:
            return _refuse(401, verdict.value, request.headers)
        delivery = _delivery_headers(request.headers)
        if isinstance(delivery, str):
            return _refuse(400, delivery, request.headers)
        span.set("github.event", tracing.event_name(delivery.event))
        span.set("delivery.id", tracing.delivery_id(delivery.delivery_id))
        if delivery.event == "ping":
            _log(delivery, "pong")
            recorder.delivery("ignored")
            return JSONResponse({"status": "pong"})
        return await self._event(delivery, raw)

    async def _event(self, delivery: _Delivery, raw: bytes) -> JSONResponse:
        try:
            payload = payloads.decode(raw, max_depth=MAX_JSON_DEPTH)
            if delivery.event == "push" and self.on_push is not None:
                self.on_push(payload)
            stored = await store_delivery(
                self.store,
                self.triggers,
                event=delivery.event,
                delivery_id=delivery.delivery_id,
                hook_id=delivery.hook_id,
                payload=payload,
                now=self.clock(),
                # A replayed body is a duplicate whatever its delivery id (the signature
                # covers the body only). GitHub's "Redeliver" (same body, new id) of a
                # stored delivery is answered 200 duplicate too: the stored row is
                # routed at least once (the sweeper re-enqueues it until it is).
                body_sha256=hashlib.sha256(raw).hexdigest(),
                own_login=self.own_login,
            )
        except BadEvent as exc:
            recorder.delivery("rejected")
            _log(delivery, "rejected", level=logging.WARNING, status=400, error=str(exc))
            return JSONResponse({"error": str(exc)}, 400)
        except (SQLAlchemyError, OSError) as exc:
            # Not acknowledged, so GitHub shows the delivery as failed and it can be redelivered.
            recorder.delivery("unavailable")
            _log(
                delivery, "store_failed", level=logging.ERROR, error=f"{type(exc).__name__}: {exc}"
            )
            return JSONResponse({"error": "database unavailable"}, 503)
        if isinstance(stored, Ignored):
            recorder.delivery("ignored")
            _log(delivery, "ignored", reason=stored.reason)
            return JSONResponse({"status": "ignored", "reason": stored.reason})
        if isinstance(stored, Duplicate):
            _log(delivery, "duplicate")
            return JSONResponse({"status": "duplicate"})
        await self._dispatch(delivery)
        if isinstance(stored, Deferred):
            _log(delivery, "accepted", intent="deferred", reason=stored.reason)
        else:
            _log(delivery, "accepted", intent=str(stored.intent), repo=stored.repo)
        return JSONResponse({"status": "accepted"}, 202)

    async def _dispatch(self, delivery: _Delivery) -> None:
        """Hand the stored delivery on; a failure here loses nothing (the row is durable)."""
        try:
            async with asyncio.timeout(self.dispatch_timeout_s):
                await self.on_accepted(delivery.delivery_id, delivery.hook_id)
        except TimeoutError:
            _log(
                delivery,
                "dispatch_timeout",
                level=logging.WARNING,
                timeout_s=self.dispatch_timeout_s,
            )
        except Exception as exc:  # whatever the hook raises, the 202 stands
            _log(
                delivery,
                "dispatch_failed",
                level=logging.ERROR,
                error=f"{type(exc).__name__}: {exc}",
            )


# What a span says happened, from our own answer: its status code, and the word of a 200.
_ANSWERED = frozenset({"pong", "ignored", "duplicate"})


def _outcome(response: JSONResponse) -> str:
    if response.status_code == 202:
        return "accepted"
    if response.status_code == 503:
        return "unavailable"
    if response.status_code >= 400:
        return "rejected"
    try:
        word = json.loads(bytes(response.body)).get("status")
    except (ValueError, AttributeError):
        word = None
    return word if word in _ANSWERED else "other"


def _delivery_headers(headers: Headers) -> _Delivery | str:
    """The identifying headers, or why they are unusable."""
    event = headers.get("x-github-event", "").strip()
    delivery_id = headers.get("x-github-delivery", "").strip()
    hook_id = headers.get("x-github-hook-id", "").strip()
    if not event or not delivery_id:
        return "missing X-GitHub-Event or X-GitHub-Delivery"
    if len(event) > MAX_EVENT_NAME:
        return f"X-GitHub-Event longer than {MAX_EVENT_NAME} characters"
    if not DELIVERY_ID.fullmatch(delivery_id):
        return f"X-GitHub-Delivery must be 1-{MAX_DELIVERY_ID} letters, digits or '-'"
    if not HOOK_ID.fullmatch(hook_id):
        return f"X-GitHub-Hook-ID must be at most {MAX_HOOK_ID} digits"
    return _Delivery(event, delivery_id, hook_id)


def _refuse(status: int, error: str, headers: Headers) -> JSONResponse:
    """Refuse before the delivery is trusted; the logged headers are as sent (truncated)."""
    recorder.delivery("rejected")
    log.warning(
        "webhook",
        github_event=headers.get("x-github-event", "")[:MAX_EVENT_NAME],
        delivery_id=headers.get("x-github-delivery", "")[:MAX_DELIVERY_ID],
        hook_id=headers.get("x-github-hook-id", "")[:MAX_HOOK_ID],
        outcome="rejected",
        status=status,
        error=error,
    )
    return JSONResponse({"error": error}, status)


def _log(delivery: _Delivery, outcome: str, *, level: int = logging.INFO, **fields: Any) -> None:
    log.log(
        level,
        "webhook",
        github_event=delivery.event,
        delivery_id=delivery.delivery_id,
        hook_id=delivery.hook_id,
        outcome=outcome,
        **fields,
    )
