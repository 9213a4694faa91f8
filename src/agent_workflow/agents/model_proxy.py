"""The agent's only way to the model: a loopback proxy that holds the real credential.

The Claude Code CLI runs with `ANTHROPIC_BASE_URL` pointing here and, as its API
key, a token minted for its run alone: the token is worth nothing elsewhere (it
is not a model credential) and nothing here once the run ends. The proxy checks
it, swaps in the deployment's key, and streams the request to the model and the
answer back unchanged. On the way it:

- meters every response: the input side of the usage is written to the database
  as soon as the response starts (`message_start`), the output side when it ends,
  so a run killed mid-way has its spending counted (the CLI's own report of a
  killed run is lost with it);
- enforces the task's budget itself: before each model request it reads what the
  task has spent, and once the budget is reached it refuses (403, which the CLI
  does not retry) and records the refusal on the grant, so the agent can block
  the phase naming the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import anyio
import httpx
import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agent_workflow.agents.model_metering import UsageCounter
from agent_workflow.asgi_server import QuietServer, base_url, listen, wait_started
from agent_workflow.core.clock import now
from agent_workflow.core.model import Phase
from agent_workflow.core.ports import ModelUsage, UsageMeter
from agent_workflow.telemetry import recorder

log = structlog.get_logger(__name__)

# Request headers the proxy sets itself, or that belong to one hop only.
_DROP_REQUEST = frozenset(
    {
        "host",
        "x-api-key",
        "authorization",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "upgrade",
        "accept-encoding",
        "proxy-authorization",
        "proxy-connection",
    }
)
_DROP_RESPONSE = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
# A request body is the whole conversation so far; the API itself caps it at 32 MB.
_MAX_REQUEST_BYTES = 32 * 1024 * 1024
# A model turn can think for minutes between streamed events; connecting should not take long.
_UPSTREAM_TIMEOUT = httpx.Timeout(connect=10.0, read=600.0, write=60.0, pool=60.0)


@dataclass(frozen=True)
class ModelCredential:
    """The deployment's credential for the model API: an API key or a bearer token."""

    api_key: str | None = None
    auth_token: str | None = None

    def headers(self) -> dict[str, str]:
        """The headers that authenticate a request upstream."""
        if self.api_key:
            return {"x-api-key": self.api_key}
        if self.auth_token:
            return {"authorization": f"Bearer {self.auth_token}"}
        return {}


@dataclass
class Grant:
    """One agent run's access: its token, whose task it bills, and whether it was refused."""

    token: str
    base_url: str
    task_id: int
    phase: Phase
    attempt: int
    refused: str | None = None  # why the proxy stopped forwarding this run's requests
    requests: int = 0


class ModelProxy:
    """A loopback proxy to the model API; `async with` runs it in this event loop."""

    def __init__(
        self,
        *,
        upstream_url: str,
        credential: ModelCredential,
        meter: UsageMeter,
        task_budget_usd: float | None,
        host: str = "127.0.0.1",
    ) -> None:
        """Forward to `upstream_url` with `credential`; meter into `meter`; refuse a task's
        requests once it has spent `task_budget_usd` (None: no task budget)."""
        self._upstream = upstream_url.rstrip("/")
        self._credential = credential
        self._meter = meter
        self._budget = task_budget_usd
        self._host = host
        self._grants: dict[str, Grant] = {}
        self._client: httpx.AsyncClient | None = None
        self._server: QuietServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.url = ""

    async def __aenter__(self) -> ModelProxy:
        app = Starlette(
            routes=[Route("/{path:path}", self._forward, methods=["GET", "POST", "HEAD"])]
        )
        sock = listen(self._host, 0)
        self._server = QuietServer(
            uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        )
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        await wait_started(self._server, self._task, sock)
        self.url = base_url(self._host, sock)
        self._client = httpx.AsyncClient(timeout=_UPSTREAM_TIMEOUT, follow_redirects=False)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        if self._client is not None:
            await self._client.aclose()

    @contextlib.asynccontextmanager
    async def grant(self, task_id: int, phase: Phase, attempt: int) -> AsyncIterator[Grant]:
        """A token for one run of (task, phase, attempt), valid until the block ends."""
        token = "aw-run-" + secrets.token_urlsafe(32)
        grant = Grant(token, self.url, task_id, phase, attempt)
        self._grants[token] = grant
        try:
            yield grant
        finally:
            del self._grants[token]

    async def _forward(self, request: Request) -> Response:
        grant = self._grants.get(_token(request.headers))
        if grant is None:
            return _error(401, "authentication_error", "not a live agent-workflow run token")
        refusal = grant.refused or await self._over_budget(grant)
        if refusal is not None:
            grant.refused = refusal
            log.warning("model_proxy.refused", task_id=grant.task_id, reason=refusal)
            return _error(403, "permission_error", refusal)
        body = await request.body()
        if len(body) > _MAX_REQUEST_BYTES:
            return _error(413, "request_too_large", "request body over 32 MB")
        assert self._client is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP_REQUEST}
        # Identity encoding: the usage is read from the bytes as they pass.
        headers.update(self._credential.headers(), **{"accept-encoding": "identity"})
        url = self._upstream + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        upstream = self._client.build_request(request.method, url, headers=headers, content=body)
        try:
            answer = await self._client.send(upstream, stream=True)
        except httpx.HTTPError as exc:
            log.warning("model_proxy.upstream_failed", error=f"{type(exc).__name__}: {exc}")
            return _error(502, "api_error", "the model API could not be reached")
        grant.requests += 1
        return StreamingResponse(
            self._relay(grant, request.url.path, answer),
            status_code=answer.status_code,
            headers={k: v for k, v in answer.headers.items() if k.lower() not in _DROP_RESPONSE},
        )

    async def _relay(self, grant: Grant, path: str, answer: httpx.Response) -> AsyncIterator[bytes]:
        metered = (
            path.rstrip("/").endswith("/v1/messages")
            and answer.status_code == 200
            and "content-encoding" not in answer.headers
        )
        counter = UsageCounter(streaming="event-stream" in answer.headers.get("content-type", ""))
        request_id = uuid.uuid4().hex
        try:
            async for chunk in answer.aiter_raw():
                if metered and counter.feed(chunk):
                    await self._record(grant, request_id, counter)
                yield chunk
        finally:
            # Also when the CLI went away mid-stream: what was used is still billed.
            with anyio.CancelScope(shield=True):
                await answer.aclose()
                if metered:
                    counter.finish()
                    if counter.started:
                        await self._record(grant, request_id, counter)
                        _count(grant, counter)

    async def _over_budget(self, grant: Grant) -> str | None:
        if self._budget is None:
            return None
        spent = await self._meter.task_spent(grant.task_id)
        if spent < self._budget:
            return None
        return f"task budget of ${self._budget:.2f} reached (spent ${spent:.2f})"

    async def _record(self, grant: Grant, request_id: str, counter: UsageCounter) -> None:
        usage = ModelUsage(
            request_id=request_id,
            task_id=grant.task_id,
            phase=grant.phase,
            attempt=grant.attempt,
            model=counter.model,
            input_tokens=counter.input_tokens,
            output_tokens=counter.output_tokens,
            cache_creation_tokens=counter.cache_creation_tokens,
            cache_read_tokens=counter.cache_read_tokens,
            cost_usd=counter.cost_usd,
        )
        try:
            await self._meter.record(usage, now())
        except Exception as exc:  # a metering blip must not cut the agent's answer
            log.error("model_proxy.meter_failed", error=f"{type(exc).__name__}: {exc}")


def _count(grant: Grant, counter: UsageCounter) -> None:
    """A response's final usage in the metrics (counted once, when it ends)."""
    recorder.model_usage(
        grant.phase,
        counter.model,
        input_tokens=counter.input_tokens,
        output_tokens=counter.output_tokens,
        cache_creation_tokens=counter.cache_creation_tokens,
        cache_read_tokens=counter.cache_read_tokens,
        cost_usd=counter.cost_usd,
    )


def _token(headers: Mapping[str, str]) -> str:
    key = headers.get("x-api-key")
    if key:
        return key
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _error(status: int, kind: str, message: str) -> JSONResponse:
    """An error in the Messages API's shape, so the CLI reports it as such."""
    text = f"agent-workflow: {message}"
    return JSONResponse(
        {"type": "error", "error": {"type": kind, "message": text}}, status_code=status
    )
