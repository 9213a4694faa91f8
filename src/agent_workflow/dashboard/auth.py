"""Who may see the dashboard: the holder of `AW_DASHBOARD_TOKEN`, and nobody else.

- A request carries the token as `Authorization: Bearer <token>`, or a session cookie
  the login form set. The cookie is never the token: it is a random session id and its
  issue time, signed (HMAC-SHA256) with a key made for this process, so it proves a
  login happened here, expires, and dies with the process.
- Tokens and signatures are compared in constant time (`hmac.compare_digest` on
  digests, so not even the token's length leaks).
- A failed login or bearer attempt waits `FAILED_LOGIN_DELAY_S` while holding one lock
  for the whole process: guesses are serialised to one per delay however many
  connections an attacker opens (the price: a right login waits behind them).
- The one state-changing request (a POST) must carry the session's CSRF token (an HMAC
  of its session id) and come from this origin (`Origin`, else `Referer`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request

COOKIE = "aw_dashboard"
PREFIX = "/dashboard"
# A session lasts a working day; after that the login form asks again.
SESSION_S = 12 * 3600
# One failed guess per second per process: 86,400 a day against a 16+ character token.
FAILED_LOGIN_DELAY_S = 1.0


@dataclass(frozen=True)
class Session:
    """An authenticated request: `id` ties its CSRF token (a bearer request has none)."""

    id: str
    bearer: bool = False


class Gate:
    """Checks tokens, signs and reads session cookies, makes and checks CSRF tokens."""

    def __init__(
        self,
        token: str,
        *,
        clock: Callable[[], float],
        failure_delay_s: float,
        key: bytes | None = None,
    ) -> None:
        if not token:
            raise ValueError("the dashboard token must not be empty")
        self._token_digest = hashlib.sha256(token.encode()).digest()
        # Per process: a restart logs everyone out, and the key never leaves memory.
        self._key = key or secrets.token_bytes(32)
        self._clock = clock
        self._failure_delay_s = failure_delay_s
        self._failures = asyncio.Lock()
        self.failed_attempts = 0  # since start, for logs and tests

    def token_ok(self, candidate: str) -> bool:
        """Whether `candidate` is the token (constant time). While a wrong one is being
        paid for (`failed`), nothing is checked: every token is refused at once, so guesses
        stay at one a second and no connection waits in a queue for its turn."""
        if self._failures.locked():
            return False
        digest = hashlib.sha256(candidate.encode()).digest()
        return hmac.compare_digest(digest, self._token_digest)

    async def failed(self) -> None:
        """Count a wrong token and hold the caller a while; a refusal while another is held
        returns at once (its token was never checked, see `token_ok`)."""
        self.failed_attempts += 1
        if self._failures.locked():
            return
        async with self._failures:
            await asyncio.sleep(self._failure_delay_s)

    def new_cookie(self) -> str:
        """A fresh session's cookie value: `<session id>.<issued at>.<signature>`."""
        payload = f"{secrets.token_urlsafe(18)}.{int(self._clock())}"
        return f"{payload}.{self._sign('session', payload)}"

    def session(self, request: Request) -> Session | None:
        """The request's session from its cookie, or None (no bearer check here)."""
        value = request.cookies.get(COOKIE, "")
        payload, _, signature = value.rpartition(".")
        session_id, _, issued = payload.partition(".")
        if not session_id or not issued.isdigit():
            return None
        if not hmac.compare_digest(signature.encode(), self._sign("session", payload).encode()):
            return None
        if not 0 <= self._clock() - int(issued) < SESSION_S:
            return None
        return Session(session_id)

    def csrf_token(self, session: Session) -> str:
        """The CSRF token every form of this session carries."""
        return self._sign("csrf", session.id)

    def csrf_ok(self, session: Session, candidate: str) -> bool:
        """Whether a form's CSRF token is this session's (constant time)."""
        # Bytes: `compare_digest` raises on non-ASCII text (a forged form is refused, not a 500).
        return hmac.compare_digest(candidate.encode(), self.csrf_token(session).encode())

    def _sign(self, purpose: str, value: str) -> str:
        return hmac.new(self._key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def bearer(request: Request) -> str | None:
    """The bearer token of the request, if it sends one."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def same_origin(request: Request) -> bool:
    """True when a POST comes from a page of this server (`Origin`, else `Referer`).

    Browsers send `Origin` with every cross-site POST; a request without either header
    is refused (no browser sends a form that way to a dashboard it did not load).
    """
    host = request.headers.get("host", "")
    sent = request.headers.get("origin") or request.headers.get("referer") or ""
    parts = urlsplit(sent)
    return bool(host) and parts.scheme in ("http", "https") and parts.netloc == host


def safe_next(value: str | None) -> str:
    """Where to go after the login: a path of the dashboard, never another site.

    Refused (the list instead): absolute and scheme-relative URLs, backslashes (some
    browsers read `/\\evil` as `//evil`), control characters, paths outside /dashboard.
    """
    home = f"{PREFIX}/"
    if not value or len(value) > 2_000 or "\\" in value:
        return home
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return home
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or value.startswith("//"):
        return home
    if parts.path != PREFIX and not parts.path.startswith(f"{PREFIX}/"):
        return home
    if "/.." in parts.path:
        return home
    return value
