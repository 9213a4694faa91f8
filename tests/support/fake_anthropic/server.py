"""The fake Messages API over real HTTP (Starlette + uvicorn on 127.0.0.1).

Run it inside the test's event loop (`async with FakeAnthropic(script) as fake`)
or on a thread of its own for synchronous callers (`with FakeAnthropic(...).in_thread()`).
Point the Claude Code CLI at it with the variables from `fake.cli_env(config_dir)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.fake_anthropic import wire
from tests.support.fake_anthropic.conversation import Conversation
from tests.support.fake_anthropic.recorder import RecordedRequest, Recorder
from tests.support.fake_anthropic.script import ApiError, Reply, Responder, Script

# How long uvicorn waits for open streams (e.g. a deliberately slow turn) when stopping.
_GRACEFUL_SHUTDOWN_S = 1

# Environment that keeps the CLI from talking to anything but the fake: no
# telemetry, error reports, update checks, feature flags or connectivity probes.
QUIET_CLI_ENV: dict[str, str] = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
    "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
}

# Blank what would make the CLI use another provider or credential than the fake's key.
_NO_OTHER_CREDENTIALS: dict[str, str] = {
    "ANTHROPIC_AUTH_TOKEN": "",
    "CLAUDE_CODE_OAUTH_TOKEN": "",
    "CLAUDE_CODE_USE_BEDROCK": "",
    "CLAUDE_CODE_USE_VERTEX": "",
    "ANTHROPIC_MODEL": "",
}

_MODELS = ["claude-opus-5-5", "claude-sonnet-5", "claude-haiku-4-5"]


class FakeAnthropic:
    """A scripted stand-in for the Anthropic Messages API that records every request."""

    def __init__(self, script: Responder | None = None, *, host: str = "127.0.0.1") -> None:
        """Create the server (not started); `script` answers `POST /v1/messages`."""
        self.script: Responder = script if script is not None else Script()
        self.recorder = Recorder()
        self.errors: list[str] = []  # exceptions raised by the script, as text
        self._host = host
        self._port = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed: asyncio.Condition | None = None  # in-loop mode only

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`, the value for ANTHROPIC_BASE_URL."""
        if not self._port:
            raise RuntimeError("FakeAnthropic is not started")
        return f"http://{self._host}:{self._port}"

    def cli_env(self, config_dir: str | Path) -> dict[str, str]:
        """Environment for a Claude Code CLI that talks only to this fake.

        `config_dir` becomes CLAUDE_CONFIG_DIR, so transcripts and settings of
        one test never meet another's.
        """
        return {
            **QUIET_CLI_ENV,
            **_NO_OTHER_CREDENTIALS,
            "ANTHROPIC_BASE_URL": self.base_url,
            "ANTHROPIC_API_KEY": "sk-ant-fake-key",
            "CLAUDE_CONFIG_DIR": str(config_dir),
        }

    # -- lifecycle -----------------------------------------------------------

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, 0))
        self._port = sock.getsockname()[1]
        return sock

    def _make_server(self) -> uvicorn.Server:
        config = uvicorn.Config(
            self.app(),
            log_level="warning",
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
        )
        return uvicorn.Server(config)

    async def start(self) -> None:
        """Listen on a free port in the running event loop."""
        self._changed = asyncio.Condition()
        sock = self._bind()
        self._server = self._make_server()
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises the startup error
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop listening and wait for the server task."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._server = self._task = None

    async def wait_for(self, predicate: Callable[[Recorder], bool]) -> None:
        """Wait until `predicate(self.recorder)` holds; it is re-checked after every request.

        Only when serving in the caller's loop (`start()`/`async with`). Bound
        the wait with `asyncio.timeout(...)`.
        """
        if self._changed is None:
            raise RuntimeError("wait_for needs the fake to run in this event loop")
        async with self._changed:
            await self._changed.wait_for(lambda: predicate(self.recorder))

    async def _notify(self) -> None:
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()

    async def __aenter__(self) -> FakeAnthropic:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[FakeAnthropic]:
        """Serve from a thread with its own event loop (for synchronous callers)."""
        sock = self._bind()
        server = self._make_server()
        thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])),
            name="fake-anthropic",
            daemon=True,
        )
        thread.start()
        while not server.started and thread.is_alive():
            threading.Event().wait(0.01)
        try:
            yield self
        finally:
            server.should_exit = True
            thread.join()

    # -- HTTP ------------------------------------------------------------------

    def app(self) -> Starlette:
        """The ASGI application (usable on its own, e.g. with httpx's ASGI transport)."""
        return Starlette(
            routes=[
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/v1/messages/count_tokens", self._count_tokens, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/api/hello", self._hello, methods=["GET", "HEAD"]),
                Route("/{path:path}", self._other, methods=["GET", "POST", "PUT", "DELETE"]),
            ]
        )

    async def _record(self, request: Request) -> tuple[int, RecordedRequest]:
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        item = RecordedRequest(
            method=request.method,
            path=request.url.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        index = self.recorder.add(item)
        await self._notify()
        return index, item

    def _answer(self, conv: Conversation) -> Reply:
        try:
            return self.script(conv)
        except Exception as exc:  # a broken script must fail the CLI's request, loudly
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return Reply(error=ApiError(400, "invalid_request_error", f"fake script failed: {exc}"))

    async def _messages(self, request: Request) -> Response:
        index, item = await self._record(request)
        conv = item.conversation
        reply = self._answer(conv)
        self.recorder.replace(index, dataclasses.replace(item, reply=reply))
        done = dataclasses.replace(item, reply=reply, completed=True)
        if reply.error is not None:
            self.recorder.replace(index, done)
            await self._notify()
            return JSONResponse(wire.error_json(reply.error), status_code=reply.error.status)
        message_id = wire.new_message_id()
        if not conv.stream:
            await asyncio.sleep(reply.delay_s)
            self.recorder.replace(index, done)
            await self._notify()
            return JSONResponse(wire.message_json(reply, conv.model, message_id))

        async def events() -> AsyncIterator[str]:
            yield wire.message_start(reply, conv.model, message_id)
            await asyncio.sleep(reply.delay_s)
            for event in wire.message_rest(reply):
                yield event
            self.recorder.replace(index, done)
            await self._notify()

        return StreamingResponse(events(), media_type="text/event-stream")

    async def _count_tokens(self, request: Request) -> Response:
        _, item = await self._record(request)
        return JSONResponse({"input_tokens": max(1, len(item.conversation.text()) // 4)})

    async def _models(self, request: Request) -> Response:
        await self._record(request)
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
            for m in _MODELS
        ]
        return JSONResponse(
            {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
        )

    async def _hello(self, request: Request) -> Response:
        await self._record(request)
        return Response(status_code=200)

    async def _other(self, request: Request) -> Response:
        await self._record(request)
        error = ApiError(404, "not_found_error", f"fake has no {request.url.path}")
        return JSONResponse(wire.error_json(error), status_code=404)
