"""The adapter's request loop: auth, spacing, rate limits, and the rule that a mutation is never resent.

| what happened                          | read (GET)          | mutation (POST/PUT/DELETE/PATCH) |
|----------------------------------------|---------------------|----------------------------------|
| connection could not be made           | retry with backoff  | retry with backoff (never sent)  |
| 5xx, timeout, dropped connection       | retry with backoff  | `UncertainOutcome`, no resend    |
| rate limited (403/429, see ratelimits) | wait, resend        | wait, resend (it was not applied)|
| 401 with an App installation token     | re-mint once, resend| re-mint once, resend             |
| 301/302 (a renamed repository, reads)  | follow (see below)  | `RedirectRefused` (not applied)  |
| 307/308 (request not processed)        | follow (see below)  | follow: resend method and body   |
| other answers                          | returned to caller  | returned to caller               |

A redirect is followed only to our own host (the token never goes elsewhere; httpx's own
redirect following stays off for that reason) and at most `MAX_REDIRECTS` times per
request; otherwise `RedirectRefused`. A 307/308 means GitHub did not process the request,
so resending a mutation to the new URL cannot apply it twice; a 301/302 answering a
mutation is not followed (a client would turn it into a GET).

An error answer the caller raises is classified by `GitHubApiError.from_response`: a
definite refusal that no resend can fix (400, 403 not a rate limit, 404, 410, 422) is a
`GitHubRefusal`, an `EffectRefused`: terminal for the effect that sent it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx

from agent_workflow import __version__
from agent_workflow.core.errors import (
    EffectRefused,
    ForgeError,
    RateLimited,
    UncertainOutcome,
    refusal_class,
)
from agent_workflow.core.lease import assert_lease_held
from agent_workflow.forge.policy import RequestPolicy
from agent_workflow.forge.ratelimits import exhausted_until, rate_limit
from agent_workflow.telemetry import recorder, tracing

log = logging.getLogger(__name__)

#: The REST API version our shapes follow; GitHub pins behaviour to it.
API_VERSION = "2022-11-28"

#: Errors raised before a single byte of the request left: resending cannot duplicate anything.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

#: Redirects followed for one request. A renamed or transferred repository answers its old
#: URL with one hop; a few more allow for a proxy in front of GHES; beyond it is a loop.
MAX_REDIRECTS = 3
#: Answers that move a read (GET/HEAD): 301 is GitHub's for a renamed repository.
_READ_REDIRECTS = frozenset({301, 302})
#: Answers that move any request, method and body unchanged: it was not processed.
_ANY_REDIRECTS = frozenset({307, 308})
_REDIRECTS = _READ_REDIRECTS | _ANY_REDIRECTS
_READS = frozenset({"GET", "HEAD"})

Kind = Literal["read", "mutation", "token"]
Sleep = Callable[[float], Awaitable[None]]


class GitHubApiError(ForgeError):
    """GitHub refused a request definitely; carries its status and message."""

    def __init__(self, method: str, url: str, status: int, message: str, errors: Any = None):
        detail = f": {errors}" if errors else ""
        ForgeError.__init__(self, f"{method} {url} → {status} {message}{detail}")
        self.status = status
        self.message = message
        self.errors = errors

    @classmethod
    def from_response(cls, response: httpx.Response) -> GitHubApiError:
        """Build from an error answer, using GitHub's `message` and `errors` when present."""
        message, errors = response.reason_phrase, None
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            message = str(body.get("message", message))
            errors = body.get("errors")
        request = response.request
        status = response.status_code
        # Only a repository's resource can refuse an effect; a refused credential (token
        # minting, `/user`, `/app`) is the operator's to fix, not the effect's end.
        refused = status in REFUSED_STATUSES and "/repos/" in request.url.path
        kind = GitHubRefusal if refused else cls
        return kind(request.method, str(request.url), status, message, errors)

    def mentions(self, text: str) -> bool:
        """True when the message or any field error contains `text` (GitHub's way of saying why)."""
        return text.lower() in f"{self.message} {self.errors}".lower()


#: Answers that resending cannot change (rate limits never get here: they are waited out).
REFUSED_STATUSES = frozenset({400, 403, 404, 410, 422})


class GitHubRefusal(GitHubApiError, EffectRefused):
    """A definite refusal (see `REFUSED_STATUSES`): terminal for the effect that sent it."""

    def __init__(self, method: str, url: str, status: int, message: str, errors: Any = None):
        super().__init__(method, url, status, message, errors)
        self.reason_class = refusal_class(status)


class ForgeUnavailable(ForgeError):
    """A read kept failing (5xx, timeouts, unreachable) after every allowed retry."""


class RedirectRefused(ForgeError):
    """A redirect that is not followed: to another host, a 301/302 answering a mutation,
    without a `Location`, or past `MAX_REDIRECTS`. Nothing was applied by the answer."""


@dataclass
class ForgeStats:
    """Requests this adapter sent; every attempt counts, so retries show up."""

    reads: int = 0
    mutations: int = 0
    token_requests: int = 0
    retries: int = 0
    rate_limit_waits: int = 0
    waited_seconds: float = 0.0
    uncertain: int = 0
    redirects: int = 0  # redirects followed (a renamed repository's old URL)

    @property
    def total(self) -> int:
        """Every request sent to GitHub."""
        return self.reads + self.mutations + self.token_requests


class Authenticator(Protocol):
    """Supplies the `Authorization` header (see `forge.auth`)."""

    async def authorization(self, http: GitHubHttp, url: httpx.URL | None = None) -> str:
        """The header value to send now to `url` (may mint a token through `http`)."""
        ...

    def invalidate(self, url: httpx.URL | None = None, http: GitHubHttp | None = None) -> None:
        """Forget a cached credential GitHub rejected for `url`."""
        ...

    async def push_token(self, http: GitHubHttp, repo: str) -> str:
        """The token a `git push` to `repo` carries: no more than that push needs."""
        ...


class MutationSpacer:
    """Keeps mutative requests at least `interval` seconds apart (per token).

    Share one spacer between adapters that use the same token.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._lock = asyncio.Lock()
        self._last = -float("inf")

    async def wait(self, sleep: Sleep = asyncio.sleep) -> None:
        """Return when the next mutation may be sent, and claim that slot."""
        if self.interval <= 0:
            return
        async with self._lock:
            delay = self._last + self.interval - time.monotonic()
            if delay > 0:
                await sleep(delay)
            self._last = time.monotonic()


class GitHubHttp:
    """One base URL, one credential, the request loop described in the module docstring."""

    def __init__(
        self,
        auth: Authenticator,
        *,
        base_url: str,
        policy: RequestPolicy,
        spacer: MutationSpacer | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.auth = auth
        self.policy = policy
        self.spacer = spacer or MutationSpacer(policy.mutation_interval)
        self.stats = ForgeStats()
        self.base_url = httpx.URL(base_url.rstrip("/") + "/")
        self._sleep = sleep
        self._client = httpx.AsyncClient(
            transport=transport,  # e.g. httpx.MockTransport in unit tests
            timeout=httpx.Timeout(policy.timeout, connect=policy.connect_timeout),
            headers={
                "accept": "application/vnd.github+json",
                "x-github-api-version": API_VERSION,
                "user-agent": f"agent-workflow/{__version__}",
            },
        )
        self._exhausted_until: float | None = None

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    def url(self, path: str) -> httpx.URL:
        """An absolute URL under the base URL (`/repos/...` keeps a GHES `/api/v3` prefix)."""
        return self.base_url.join(path.lstrip("/"))

    def same_origin(self, url: str) -> bool:
        """True when `url` (e.g. a `Link` header's) is on our host: never send the token elsewhere."""
        other = httpx.URL(url)
        return (other.scheme, other.host, other.port) == (
            self.base_url.scheme,
            self.base_url.host,
            self.base_url.port,
        )

    async def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        json: Any = None,
        params: dict[str, str | int] | None = None,
        kind: Kind | None = None,
        authorization: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send under the policy; returns any answer that is not retried or raised.

        `kind` defaults to read for GET and mutation otherwise; `token` marks
        App token minting (repeatable, not spaced). `authorization` overrides
        the authenticator (the App JWT); `headers` are sent besides (`If-None-Match`).
        """
        kind = kind or ("read" if method.upper() == "GET" else "mutation")
        target = url if isinstance(url, httpx.URL) else self.url(url)
        failures = waits = hops = 0
        reauthenticated = False
        while True:
            await self._before_send(kind)
            if kind == "mutation":
                assert_lease_held()  # after any wait: a frozen worker must not send (G5)
            header = authorization or await self.auth.authorization(self, target)
            self._count(kind)
            try:
                with tracing.github_span(method, self._relative(target)) as span:
                    response = await self._client.request(
                        method,
                        target,
                        json=json,
                        params=params,
                        headers={**(headers or {}), "authorization": header},
                    )
                    span.set("http.response.status_code", response.status_code)
            except httpx.TransportError as exc:
                self._record(method, target, None)
                failures += 1
                await self._transport_failed(method, target, kind, exc, failures)
                continue
            self._record(method, target, response.status_code)
            self._note_budget(response)
            limited = rate_limit(response, waits, self.policy)
            if limited is not None:
                waits += 1
                await self._wait_for_limit(method, target, limited.wait, limited.reason, waits)
                continue
            if response.status_code == 401 and authorization is None and not reauthenticated:
                # A revoked or expired installation token: GitHub refused it, nothing applied.
                reauthenticated = True
                self.auth.invalidate(target, self)
                continue
            if response.status_code >= 500:
                failures += 1
                await self._server_failed(method, target, kind, response, failures)
                continue
            if response.status_code in _REDIRECTS:
                hops += 1
                target, params = self._redirected(method, response, hops), None
                continue
            return response

    # -- the loop's steps --------------------------------------------------------------

    def _redirected(self, method: str, response: httpx.Response, hops: int) -> httpx.URL:
        """Where a redirect answer sends the request (its `Location` carries the query),
        or `RedirectRefused` (see the module docstring)."""
        status = response.status_code
        what = f"{method} {response.request.url} → {status}"
        if status not in _ANY_REDIRECTS and method.upper() not in _READS:
            raise RedirectRefused(f"{what}: not followed for a {method} (it was not applied)")
        location = response.headers.get("location")
        if not location:
            raise RedirectRefused(f"{what} without a Location")
        if hops > MAX_REDIRECTS:
            raise RedirectRefused(f"{what}: more than {MAX_REDIRECTS} redirects")
        target = response.request.url.join(location)
        if not self.same_origin(str(target)):
            raise RedirectRefused(f"{what}: refusing to follow a redirect off our host: {target}")
        log.info("github redirect: %s → %s", what, target)
        self.stats.redirects += 1
        return target

    def _record(self, method: str, target: httpx.URL, status: int | None) -> None:
        """The request in the metrics, by its route template (never its raw path)."""
        recorder.github_request(method, self._relative(target), status)

    def _relative(self, target: httpx.URL) -> str:
        """The path relative to the API's base, as sent (percent-encoded: a `/` in a
        label's name stays inside its segment); a GHES base carries `/api/v3/`."""
        path = target.raw_path.decode("ascii").partition("?")[0]
        base = self.base_url.raw_path.decode("ascii")
        return path[len(base) - 1 :] if path.startswith(base) else path

    def _count(self, kind: Kind) -> None:
        if kind == "read":
            self.stats.reads += 1
        elif kind == "mutation":
            self.stats.mutations += 1
        else:
            self.stats.token_requests += 1

    async def _before_send(self, kind: Kind) -> None:
        if kind == "mutation":
            await self.spacer.wait(self._sleep)
        if self._exhausted_until is not None:
            wait = self._exhausted_until - time.time() + self.policy.reset_margin
            self._exhausted_until = None
            if wait > 0:
                await self._wait_for_limit("next", "request", wait, "budget spent", 0)

    def _note_budget(self, response: httpx.Response) -> None:
        if response.is_success:
            self._exhausted_until = exhausted_until(response)

    async def _wait_for_limit(
        self, method: str, target: object, wait: float, reason: str, waits: int
    ) -> None:
        if waits > self.policy.rate_limit_retries or wait > self.policy.max_wait:
            raise RateLimited(
                f"{method} {target}: still rate limited after {max(waits - 1, 0)} wait(s) "
                f"(next would be {wait:.0f}s, longest allowed {self.policy.max_wait:.0f}s): "
                f"{reason}"
            )
        log.warning("github rate limit on %s %s, waiting %.1fs: %s", method, target, wait, reason)
        self.stats.rate_limit_waits += 1
        self.stats.waited_seconds += wait
        recorder.rate_limit_wait(wait)
        await self._sleep(wait)

    async def _transport_failed(
        self, method: str, target: object, kind: Kind, exc: httpx.TransportError, failures: int
    ) -> None:
        what = f"{method} {target}: {type(exc).__name__}: {exc}"
        if kind == "mutation" and not isinstance(exc, _NEVER_SENT):
            self.stats.uncertain += 1
            raise UncertainOutcome(f"{what} (the request may have been applied)") from exc
        await self._backoff_or_give_up(what, failures, exc)

    async def _server_failed(
        self, method: str, target: object, kind: Kind, response: httpx.Response, failures: int
    ) -> None:
        what = f"{method} {target} → {response.status_code}"
        if kind == "mutation":
            self.stats.uncertain += 1
            raise UncertainOutcome(f"{what} (the request may have been applied)")
        await self._backoff_or_give_up(what, failures, None)

    async def _backoff_or_give_up(
        self, what: str, failures: int, cause: BaseException | None
    ) -> None:
        if failures >= self.policy.read_attempts:
            raise ForgeUnavailable(f"{what}; gave up after {failures} attempts") from cause
        delay = min(self.policy.backoff_base * 2 ** (failures - 1), self.policy.backoff_max)
        if self.policy.jitter:
            delay *= random.uniform(0.5, 1.0)
        log.warning("github request failed (%s), retrying in %.2fs", what, delay)
        self.stats.retries += 1
        await self._sleep(delay)
