"""Run the emulator: `EmulatorServer` for tests (same event loop or a thread), `main` for the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import threading
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Self

import uvicorn
from starlette.types import ASGIApp

from agent_workflow.asgi_server import QuietServer, base_url, listen, wait_started
from github_emulator.app import build_app
from github_emulator.client import EmulatorAdmin
from github_emulator.core import DEFAULT_BOT, DEFAULT_TOKEN, Emulator, EmulatorConfig

#: A fault that holds a request is woken at shutdown; this bounds anything else still running.
GRACEFUL_SHUTDOWN = 2
#: How long start-up may take before we call it a failure.
START_TIMEOUT = 10.0


def _uvicorn_config(app: ASGIApp) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        lifespan="off",
        http="h11",  # the connection-drop fault relies on h11's request cycle (see app.py)
        ws="none",
        log_config=None,  # leave the host's logging alone
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
    )


@contextlib.asynccontextmanager
async def serve_app(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve any ASGI app on this loop (a free port by default); yields its base URL.

    Handy for a webhook receiver in tests: `async with serve_app(app) as url: ...`.
    """
    sock = listen(host, port)
    server = QuietServer(_uvicorn_config(app))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await wait_started(server, task, sock)
    try:
        yield base_url(host, sock)
    finally:
        server.should_exit = True
        await task


class EmulatorServer:
    """A GitHub emulator on a free loopback port, as an async context manager.

    >>> async with EmulatorServer(token="t", webhook_url=url, webhook_secret="s") as emu:
    ...     await emu.admin.create_repo("octo/demo")
    ...     forge = GitHubForge.from_token("t", base_url=emu.url)

    `url` is the REST base, `admin` an `EmulatorAdmin` bound to it, and
    `emulator` the in-process object (only touch it from the server's loop:
    with `thread=True` the server runs its own loop in a thread, which keeps it
    answering while a test blocks its own loop).
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        token: str | None = None,
        bot_login: str | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        app_id: int | None = None,
        app_public_key_pem: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        thread: bool = False,
    ) -> None:
        config = config or EmulatorConfig()
        replace = dataclasses.replace
        if bot_login is not None:
            config = replace(config, bot_login=bot_login)
        if token is not None:
            config = replace(config, tokens={token: config.bot_login})
        if webhook_url is not None:
            config = replace(config, webhook_url=webhook_url, webhook_secret=webhook_secret)
        if app_id is not None:
            config = replace(config, app_id=app_id, app_public_key_pem=app_public_key_pem)
        self.config = config
        self.host, self.port, self.thread = host, port, thread
        self.url = ""
        self._emulator: Emulator | None = None
        self._admin: EmulatorAdmin | None = None
        self._server: QuietServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def emulator(self) -> Emulator:
        """The in-process emulator (state, faults, counters)."""
        if self._emulator is None:
            raise RuntimeError("the emulator is not running")
        return self._emulator

    @property
    def admin(self) -> EmulatorAdmin:
        """The admin client for this server."""
        if self._admin is None:
            raise RuntimeError("the emulator is not running")
        return self._admin

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Bind, serve, and return once the server accepts connections."""
        if self.thread:
            ready = threading.Event()
            self._thread = threading.Thread(
                target=self._thread_main, args=(ready,), name="github-emulator", daemon=True
            )
            self._thread.start()
            if not await asyncio.to_thread(ready.wait, START_TIMEOUT):
                raise RuntimeError("the emulator did not start")
        else:
            await self._serve()
        if self._task is None:
            raise RuntimeError("the emulator failed to start")
        self._admin = EmulatorAdmin(self.url)

    async def stop(self) -> None:
        """Stop serving; held requests are released and webhook deliveries finished."""
        if self._admin is not None:
            await self._admin.aclose()
            self._admin = None
        if self._thread is not None:
            assert self._thread_loop is not None
            self._thread_loop.call_soon_threadsafe(self._request_exit)
            await asyncio.to_thread(self._thread.join, START_TIMEOUT)
            self._thread = None
        else:
            self._request_exit()
            await self._finish()

    async def _serve(self) -> None:
        sock = listen(self.host, self.port)
        self.port, self.url = sock.getsockname()[1], base_url(self.host, sock)
        self._emulator = Emulator(self.config)
        self._emulator.set_api_url(self.url)
        self._server = QuietServer(_uvicorn_config(build_app(self._emulator)))
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        await wait_started(self._server, self._task, sock)

    def _request_exit(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._emulator is not None:
            # Wake held requests now so uvicorn's graceful shutdown does not wait on them.
            self._emulator.wake()

    async def _finish(self) -> None:
        if self._task is not None:
            await self._task
        if self._emulator is not None:
            await self._emulator.aclose()

    def _thread_main(self, ready: threading.Event) -> None:
        async def run() -> None:
            self._thread_loop = asyncio.get_running_loop()
            await self._serve()
            ready.set()
            await self._finish()

        asyncio.run(run())


def main(
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    token: str = DEFAULT_TOKEN,
    bot_login: str = DEFAULT_BOT,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    app_id: int | None = None,
    app_public_key_pem: str | None = None,
    repos: Sequence[str] = (),
) -> None:
    """Serve an emulator until SIGINT/SIGTERM, then exit cleanly (the `aw emulator` command).

    Prints `emulator listening on <url>` once bound (useful with `port=0`).
    `repos` ("owner/name") are created up front.
    """
    config = EmulatorConfig(
        tokens={token: bot_login},
        bot_login=bot_login,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        app_id=app_id,
        app_public_key_pem=app_public_key_pem,
    )

    async def run() -> None:
        sock = listen(host, port)
        url = base_url(host, sock)
        emulator = Emulator(config)
        emulator.set_api_url(url)
        for full_name in repos:
            emulator.state.create_repo(full_name)
        server = QuietServer(_uvicorn_config(build_app(emulator)))

        def stop() -> None:
            server.should_exit = True

        # Our own handlers: uvicorn's re-raise the signal after shutdown, so the
        # process would die of SIGTERM instead of exiting 0 after a clean stop.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        print(f"emulator listening on {url}", flush=True)
        try:
            await server.serve(sockets=[sock])
        finally:
            await emulator.aclose()

    asyncio.run(run())
