"""Unit tests of rate-limit recognition: which answers are limits and how long each asks."""

from __future__ import annotations

import httpx
import pytest

from agent_workflow.forge.policy import RequestPolicy
from agent_workflow.forge.ratelimits import exhausted_until, rate_limit

POLICY = RequestPolicy(timeout=30.0, mutation_interval=1.0, secondary_wait=60.0, reset_margin=1.0)
NOW = 1_700_000_000.0


def _response(status: int, message: str = "", **headers: str) -> httpx.Response:
    request = httpx.Request("POST", "https://api.github.com/repos/o/r/issues/1/comments")
    headers = {k.replace("_", "-"): v for k, v in headers.items()}
    return httpx.Response(status, json={"message": message}, headers=headers, request=request)


def _wait(response: httpx.Response, waits: int = 0) -> float | None:
    limit = rate_limit(response, waits, POLICY, clock=lambda: NOW)
    return None if limit is None else limit.wait


def test_retry_after__is_obeyed() -> None:
    assert _wait(_response(403, "secondary rate limit", retry_after="42")) == 42


def test_primary__waits_until_reset_plus_margin() -> None:
    response = _response(
        403,
        "API rate limit exceeded",
        x_ratelimit_remaining="0",
        x_ratelimit_reset=str(int(NOW) + 30),
    )
    assert _wait(response) == pytest.approx(31)


def test_secondary_without_retry_after__one_minute_doubling() -> None:
    response = _response(403, "You have exceeded a secondary rate limit.")
    assert [_wait(response, n) for n in range(3)] == [60, 120, 240]


def test_429_without_headers__is_a_secondary_limit() -> None:
    assert _wait(_response(429)) == 60


@pytest.mark.parametrize("status", [403, 404, 422, 500])
def test_other_refusals__are_not_rate_limits(status: int) -> None:
    assert _wait(_response(status, "Resource not accessible by integration")) is None


def test_exhausted_until__only_when_budget_is_spent() -> None:
    spent = _response(200, x_ratelimit_remaining="0", x_ratelimit_reset="1700000100")
    assert exhausted_until(spent) == 1700000100
    assert exhausted_until(_response(200, x_ratelimit_remaining="12")) is None
