"""Recognising GitHub's rate-limit answers and how long each asks us to wait.

GitHub's rules (docs: "Rate limits for the REST API"): a 403 or 429 with
`retry-after` means wait that many seconds; with `x-ratelimit-remaining: 0`
wait until `x-ratelimit-reset`; a secondary-limit message without either
means wait at least a minute and back off exponentially. Any other 403 is a
real refusal (permissions), not a rate limit. A rate-limited request was not
applied, so re-sending it after the wait is safe even for a POST.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from agent_workflow.forge.policy import RequestPolicy

#: Phrases GitHub uses in secondary-limit messages (older ones say "abuse").
_SECONDARY_HINTS = ("secondary rate limit", "abuse detection")


@dataclass(frozen=True)
class RateLimit:
    """A rate-limit answer: how long to wait and a line for logs and errors."""

    wait: float
    reason: str


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else ""


def rate_limit(
    response: httpx.Response,
    waits_so_far: int,
    policy: RequestPolicy,
    clock: Callable[[], float] = time.time,
) -> RateLimit | None:
    """The wait a rate-limited answer asks for, or None when it is not a rate limit."""
    if response.status_code not in (403, 429):
        return None
    headers, message = response.headers, _message(response)
    retry_after = headers.get("retry-after")
    if retry_after is not None and retry_after.strip().isdigit():
        return RateLimit(float(retry_after), f"retry-after {retry_after}s: {message}")
    reset = headers.get("x-ratelimit-reset")
    if headers.get("x-ratelimit-remaining") == "0" and reset is not None and reset.isdigit():
        wait = max(int(reset) - clock(), 0.0) + policy.reset_margin
        return RateLimit(wait, f"primary rate limit, resets at {reset}: {message}")
    if response.status_code == 429 or any(h in message.lower() for h in _SECONDARY_HINTS):
        wait = policy.secondary_wait * 2**waits_so_far
        return RateLimit(wait, f"secondary rate limit without retry-after: {message}")
    return None


def exhausted_until(response: httpx.Response) -> float | None:
    """When a successful answer says the budget is spent: the reset time, else None.

    Lets the next request wait for the reset instead of spending a call on a 403.
    """
    if response.headers.get("x-ratelimit-remaining") != "0":
        return None
    reset = response.headers.get("x-ratelimit-reset", "")
    return float(reset) if reset.isdigit() else None
