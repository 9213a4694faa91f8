"""Serving an ASGI app in this event loop: bind first, no uvicorn signal handling,
a deadline on every request head.

Both `aw serve` and the GitHub emulator use it. The host process owns signals
(uvicorn's own handler re-raises SIGTERM after shutdown, which would kill the
process before our cleanup — releasing leases — could run).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator
from typing import Any, ClassVar

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol

# GitHub gives up on a delivery after 10 s, so a request head still arriving then is a
# slow client holding a connection, not a webhook worth waiting for.
HEAD_TIMEOUT_S = 10.0


class QuietServer(uvicorn.Server):
    """uvicorn without signal handling, closing connections whose request head is late.

    Stop it with `should_exit = True`. uvicorn bounds a request head's size (h11's
    16 KiB) but not its time: a client sending a header byte now and then, or nothing
    at all, would hold its connection forever — and a place under `limit_concurrency`,
    which counts connections, so enough of them would turn every webhook away with 503.
    Here a head must be complete within `head_timeout_s` of the connection's start (on
    a kept-alive connection: of its first byte; uvicorn's keep-alive timeout covers the
    wait before it). A late head gets a 408 if any of it arrived, and the connection is
    closed. The body has no deadline here: the app sets its own (the ingress does).

    `config` must be unloaded with `http` "auto" or "h11": it is switched to this
    module's h11 protocol (also where httptools is installed: one parser, the tested one).
    """

    def __init__(self, config: uvicorn.Config, *, head_timeout_s: float = HEAD_TIMEOUT_S) -> None:
        if head_timeout_s <= 0:
            raise ValueError(f"head_timeout_s must be positive, not {head_timeout_s}")
        if config.loaded or config.http not in ("auto", "h11"):
            raise ValueError(
                "QuietServer needs an unloaded uvicorn.Config with http 'auto' or 'h11'"
            )
        config.http = _head_deadline_protocol(head_timeout_s)
        super().__init__(config)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class _HeadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request head (see `QuietServer`)."""

    head_timeout_s: ClassVar[float]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(  # type: ignore[override]  # as uvicorn's: a TCP transport
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        self._watch_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _watch_head(self) -> None:
        """Arm the deadline while a head is awaited (h11's client state IDLE), else disarm.

        Checked after each read: a head completed by it moves h11 on to the body. Armed
        once per head, so bytes arriving do not extend it.
        """
        if self.conn.their_state is not h11.IDLE or self.transport.is_closing():
            self._disarm()
        elif self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_late)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.conn.their_state is not h11.IDLE or self.transport.is_closing():
            return
        started = bool(self.conn.trailing_data[0])
        try:
            if started:  # tell a real (if slow) client why; a silent socket just closes
                self.logger.warning("Request head not received within %g s.", self.head_timeout_s)
                self._send_408()
            else:
                self.conn.send(h11.ConnectionClosed())
        except h11.LocalProtocolError:  # h11 will not say it: close all the same
            pass
        self.transport.close()

    def _send_408(self) -> None:
        message = f"request head not received within {self.head_timeout_s:g} s".encode()
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(message)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=408, headers=headers, reason=STATUS_PHRASES[408]),
            h11.Data(data=message),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")


def _head_deadline_protocol(head_timeout_s: float) -> type[H11Protocol]:
    """The protocol class uvicorn instantiates per connection, with this deadline."""

    class HeadDeadlineProtocol(_HeadDeadlineProtocol):
        pass

    HeadDeadlineProtocol.head_timeout_s = head_timeout_s
    return HeadDeadlineProtocol


def listen(host: str, port: int) -> socket.socket:
    """Bind first, so port 0 gives a free port we know, and a taken port fails here.

    The explicit IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on sockets
    whose `proto` says TCP, and without it every answer (headers and body are
    written separately) waits ~40 ms for a delayed ACK.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def base_url(host: str, sock: socket.socket) -> str:
    """The http URL a bound socket answers on."""
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{sock.getsockname()[1]}"


async def wait_started(
    server: uvicorn.Server, task: asyncio.Task[None], sock: socket.socket
) -> None:
    """Return once `server` accepts connections; raise if it died trying."""
    while not server.started:
        if task.done():
            sock.close()
            await task  # raises the start-up error
            raise RuntimeError("the server stopped during start-up")
        await asyncio.sleep(0.01)
