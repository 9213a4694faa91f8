"""The dashboard's pure parts: state words, links, totals, the login's `next`, the gate."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from starlette.requests import Request

from agent_workflow.config import load_settings
from agent_workflow.core.errors import ConfigError
from agent_workflow.core.model import PhaseStatus
from agent_workflow.dashboard.auth import COOKIE, SESSION_S, Gate, safe_next, same_origin
from agent_workflow.dashboard.views import Links, StateWord, phase_state, totals, web_base
from agent_workflow.store.dashboard import TaskOutcome
from tests.conftest import FakeClock

NOW = 1_000_000.0


@pytest.mark.parametrize(
    ("status", "lease_until", "word"),
    [
        ("pending", None, StateWord.PENDING),
        ("active", NOW + 10, StateWord.ACTIVE),
        ("active", NOW - 1, StateWord.PENDING),  # its worker died: waiting for the next
        ("active", None, StateWord.PENDING),
        ("complete", None, StateWord.COMPLETE),
        ("blocked", None, StateWord.BLOCKED),
        ("failed", None, StateWord.FAILED),
    ],
)
def test_phase_state__words(status: str, lease_until: float | None, word: StateWord) -> None:
    assert phase_state(status, lease_until, NOW) is word


def test_phase_state__every_status_has_a_word() -> None:
    for status in PhaseStatus:
        assert phase_state(status.value, NOW + 1, NOW).value in {w.value for w in StateWord}
    with pytest.raises(ValueError, match="paused"):
        phase_state("paused", None, NOW)  # a status the store never writes is loud


@pytest.mark.parametrize(
    ("target", "kept"),
    [
        ("/dashboard/tasks/3", True),
        ("/dashboard/?repo=a%2Fb&state=blocked", True),
        ("/dashboard", True),
        ("https://evil.example/dashboard/", False),
        ("//evil.example/dashboard/", False),
        ("/\\evil.example/dashboard/", False),
        ("/dashboard/../../elsewhere", False),
        ("/dashboardx", False),
        ("/elsewhere", False),
        ("javascript:alert(1)", False),
        ("/dashboard/\r\nSet-Cookie: x=1", False),
        ("", False),
    ],
)
def test_safe_next__only_dashboard_paths(target: str, kept: bool) -> None:
    assert safe_next(target) == (target if kept else "/dashboard/")


def test_web_base_and_links() -> None:
    assert web_base("https://api.github.com") == "https://github.com"
    assert web_base("https://ghe.example/api/v3") == "https://ghe.example"
    links = Links("https://github.com")
    assert (
        links.effect("o/r", 7, 12, "deliver", "open_pr", "12") == "https://github.com/o/r/pull/12"
    )
    assert (
        links.effect("o/r", 7, 12, "plan", "comment", "99")
        == "https://github.com/o/r/issues/7#issuecomment-99"
    )
    assert (  # a round's summary is on the pull request
        links.effect("o/r", 7, 12, "revise", "comment", "5")
        == "https://github.com/o/r/issues/12#issuecomment-5"
    )
    assert links.effect("o/r", 7, 12, "revise", "reply", "8") == (
        "https://github.com/o/r/pull/12#discussion_r8"
    )
    assert links.effect("o/r", 7, None, "plan", "comment", None) is None  # not performed yet


def test_totals__per_repository_and_day() -> None:
    day = 86_400.0 * 20_000  # a UTC midnight
    outcomes = [
        TaskOutcome("a/x", day + 10, 1.0, day + 70, False),  # PR after 60 s
        TaskOutcome("a/x", day + 20, 2.0, day + 200, False),  # PR after 180 s
        TaskOutcome("a/x", day + 30, 0.5, None, True),  # blocked
        TaskOutcome("b/y", day + 86_400, 0.25, None, False),  # still running
    ]
    by_repo, by_day = totals(outcomes)
    a, b = by_repo
    assert (a.name, a.tasks, a.cost_usd, a.succeeded, a.ended) == ("a/x", 3, 3.5, 2, 3)
    assert a.success_rate == pytest.approx(2 / 3)
    assert a.median_to_pr_s == 120.0
    assert (b.tasks, b.success_rate, b.median_to_pr_s) == (1, None, None)
    assert [d.tasks for d in by_day] == [1, 3]  # newest day first


def _request(cookie: str = "", **headers: str) -> Request:
    raw = [(k.encode(), v.encode()) for k, v in headers.items()]
    if cookie:
        raw.append((b"cookie", f"{COOKIE}={cookie}".encode()))
    return Request({"type": "http", "headers": raw, "method": "GET", "path": "/dashboard/"})


def test_gate__session_cookie_is_signed_and_expires() -> None:
    clock = FakeClock(NOW)
    gate = Gate("a-token-long-enough-0000", clock=clock, failure_delay_s=0)
    cookie = gate.new_cookie()
    session = gate.session(_request(cookie))
    assert session is not None
    assert "a-token" not in cookie
    session_id, issued, signature = cookie.split(".")
    assert gate.session(_request(f"{session_id}x.{issued}.{signature}")) is None  # tampered
    assert gate.session(_request(f"{session_id}.{int(NOW) + 9}.{signature}")) is None
    other = Gate("a-token-long-enough-0000", clock=clock, failure_delay_s=0)
    assert other.session(_request(cookie)) is None  # another process's key
    assert gate.csrf_ok(session, gate.csrf_token(session))
    assert not gate.csrf_ok(session, other.csrf_token(session))
    clock.advance(SESSION_S)
    assert gate.session(_request(cookie)) is None  # expired


def test_gate__token_compare() -> None:
    gate = Gate("a-token-long-enough-0000", clock=FakeClock(NOW), failure_delay_s=0)
    assert gate.token_ok("a-token-long-enough-0000")
    assert not gate.token_ok("a-token-long-enough-000")
    assert not gate.token_ok("")


def test_same_origin() -> None:
    assert same_origin(_request(host="h:8080", origin="http://h:8080"))
    assert same_origin(_request(host="h:8080", referer="http://h:8080/dashboard/tasks/1"))
    assert not same_origin(_request(host="h:8080", origin="http://evil:8080"))
    assert not same_origin(_request(host="h:8080", origin="null"))
    assert not same_origin(_request(host="h:8080"))


def test_settings__dashboard_token_is_a_secret_of_some_length() -> None:
    token = "a-token-long-enough-0000"
    settings = load_settings(dashboard_token=token)
    assert settings.dashboard_token is not None
    assert settings.dashboard_token.get_secret_value() == token
    assert token not in repr(settings)
    assert token not in str(settings)
    with pytest.raises(ConfigError, match=r"AW_DASHBOARD_TOKEN: .*at least 16 characters"):
        load_settings(dashboard_token="short")
    assert load_settings(dashboard_token="").dashboard_token is None  # empty: no dashboard


async def test_gate__while_a_wrong_token_is_paid_for__nothing_is_checked_nothing_waits() -> None:
    """Guesses stay at one per delay, and no connection queues behind another's delay
    (a queue of waiting connections would fill the server's connection cap)."""
    gate = Gate("a-token-long-enough-0000", clock=FakeClock(NOW), failure_delay_s=3600)
    first = asyncio.create_task(gate.failed())
    await asyncio.sleep(0)  # the first failure now holds the delay
    assert not gate.token_ok("a-token-long-enough-0000")  # not even the right one is checked
    await asyncio.wait_for(gate.failed(), timeout=5)  # returns at once: no queue
    assert gate.failed_attempts == 2
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first
    assert gate.token_ok("a-token-long-enough-0000")


def test_gate__non_ascii_cookie_or_csrf__refused_not_an_error() -> None:
    gate = Gate("a-token-long-enough-0000", clock=FakeClock(NOW), failure_delay_s=0)
    cookie = gate.new_cookie()
    session_id, issued, _ = cookie.split(".")
    assert gate.session(_request(f"{session_id}.{issued}.é".encode().decode("latin-1"))) is None
    session = gate.session(_request(cookie))
    assert session is not None
    assert not gate.csrf_ok(session, "é" * 64)
