"""Fault injection: rules that make matching REST calls fail the ways GitHub does.

A rule fires on requests whose method and path (without any `/api/v3`
prefix) match, at most `times` times (`None` = every time). What each kind
does, and whether the mutation is applied:

- `drop_after_apply`: applied, then the connection is aborted with no response.
- `error_502_before_apply`: not applied; 502 with a JSON body.
- `secondary_rate_limit`: not applied; `status` (403 or 429) with GitHub's
  secondary-rate-limit message and `retry-after: retry_after` (omitted when
  `retry_after` is None, the variant GitHub documents as "wait at least a minute").
- `primary_rate_limit`: not applied; 403 with `x-ratelimit-remaining: 0` and
  `x-ratelimit-reset` `seconds` from now.
- `refuse`: not applied; `status` (e.g. 422, 403 for a locked issue, 410) with a
  GitHub-style JSON error: a definite refusal no resend can change.
- `latency`: waits `seconds`, then serves the request normally (applied).
- `timeout`: with `apply=True` the mutation is applied first, then the answer
  is held `seconds` (longer than the client waits) and sent to nobody; with
  `apply=False` the request is held `seconds` and the connection dropped,
  nothing applied.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from github_emulator.errors import ApiError

#: Where the ASGI wrapper leaves the connection's transport, so a fault can abort it.
TRANSPORT_KEY = "agent_workflow.emulator.transport"

SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
    "again. If you reach out to GitHub Support for help, please include the request ID {rid}."
)
SECONDARY_DOCS = (
    "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api"
    "#about-secondary-rate-limits"
)
PRIMARY_DOCS = (
    "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api"
    "#exceeding-the-rate-limit"
)


class FaultKind(StrEnum):
    """The failure a rule produces (see the module docstring for what is applied)."""

    DROP_AFTER_APPLY = "drop_after_apply"
    ERROR_502_BEFORE_APPLY = "error_502_before_apply"
    SECONDARY_RATE_LIMIT = "secondary_rate_limit"
    PRIMARY_RATE_LIMIT = "primary_rate_limit"
    LATENCY = "latency"
    REFUSE = "refuse"
    TIMEOUT = "timeout"


@dataclass
class FaultRule:
    """One injected fault; `fired` counts how often it has hit."""

    method: str
    path: str
    kind: FaultKind
    times: int | None = 1
    seconds: float = 1.0
    retry_after: int | None = 1
    status: int = 403
    apply: bool = True
    id: int = 0
    fired: int = 0
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.kind = FaultKind(self.kind)
        self.method = self.method.upper()
        self._pattern = re.compile(self.path)

    def matches(self, method: str, path: str) -> bool:
        """True when this rule applies to the request and has shots left."""
        if self.times is not None and self.fired >= self.times:
            return False
        if self.method not in ("*", method.upper()):
            return False
        assert self._pattern is not None
        return self._pattern.search(path) is not None

    def as_json(self) -> dict[str, Any]:
        """The rule as the admin API lists it."""
        return {
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "kind": str(self.kind),
            "times": self.times,
            "seconds": self.seconds,
            "retry_after": self.retry_after,
            "status": self.status,
            "apply": self.apply,
            "fired": self.fired,
        }


class FaultBook:
    """The active rules, first match wins."""

    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self._ids = itertools.count(1)

    def add(self, rule: FaultRule) -> FaultRule:
        """Register a rule and give it an id."""
        rule.id = next(self._ids)
        self.rules.append(rule)
        return rule

    def take(self, method: str, path: str) -> FaultRule | None:
        """The first matching rule, with one shot used up."""
        for rule in self.rules:
            if rule.matches(method, path):
                rule.fired += 1
                return rule
        return None

    def clear(self) -> None:
        """Remove every rule."""
        self.rules.clear()


class DroppedResponse(Response):
    """Sends nothing and aborts the TCP connection: the client sees the peer vanish."""

    def __init__(self) -> None:
        super().__init__(status_code=599)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport: Any = scope.get(TRANSPORT_KEY)
        if transport is None:
            # No uvicorn transport (e.g. an in-process ASGI client): raising is
            # the closest thing to a vanished peer that transport understands.
            raise ConnectionAbortedError("emulator dropped the connection")
        transport.abort()
        # Let the loop run connection_lost so uvicorn marks the request
        # disconnected and does not try to answer it with a 500.
        for _ in range(10):
            await asyncio.sleep(0)


Sleep = Callable[[float], Awaitable[None]]
Handler = Callable[[], Awaitable[Response]]


async def run_with_fault(rule: FaultRule, handler: Handler, sleep: Sleep) -> Response:
    """Serve a request under `rule`; `handler` applies the request and builds the answer."""
    match rule.kind:
        case FaultKind.DROP_AFTER_APPLY:
            await _applied(handler)
            return DroppedResponse()
        case FaultKind.ERROR_502_BEFORE_APPLY:
            return JSONResponse(ApiError(502, "Server Error").body(), status_code=502)
        case FaultKind.SECONDARY_RATE_LIMIT:
            return _secondary(rule)
        case FaultKind.PRIMARY_RATE_LIMIT:
            return _primary(rule)
        case FaultKind.REFUSE:
            body = ApiError(rule.status, f"Refused (injected rule {rule.id})").body()
            return JSONResponse(body, status_code=rule.status)
        case FaultKind.LATENCY:
            await sleep(rule.seconds)
            return await handler()
        case FaultKind.TIMEOUT:
            if not rule.apply:
                await sleep(rule.seconds)
                return DroppedResponse()
            response = await _applied(handler)
            await sleep(rule.seconds)
            return response
        case _:  # pragma: no cover - FaultKind is exhaustive
            raise AssertionError(f"unknown fault kind {rule.kind!r}")


async def _applied(handler: Handler) -> Response:
    """Run the handler; an API error still counts as "the server answered" for the fault."""
    try:
        return await handler()
    except ApiError as exc:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def _secondary(rule: FaultRule) -> Response:
    headers = {} if rule.retry_after is None else {"retry-after": str(rule.retry_after)}
    body = ApiError(
        rule.status,
        SECONDARY_MESSAGE.format(rid=f"EMU:{rule.id}:{rule.fired}"),
        documentation_url=SECONDARY_DOCS,
    ).body()
    return JSONResponse(body, status_code=rule.status, headers=headers)


def _primary(rule: FaultRule) -> Response:
    reset = math.ceil(time.time() + rule.seconds)
    headers = {
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-used": "5000",
        "x-ratelimit-reset": str(reset),
        "x-ratelimit-resource": "core",
    }
    body = ApiError(
        403, "API rate limit exceeded for installation.", documentation_url=PRIMARY_DOCS
    ).body()
    return JSONResponse(body, status_code=403, headers=headers)
