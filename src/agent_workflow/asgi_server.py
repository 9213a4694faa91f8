"""Serving an ASGI app in this event loop: bind first, no uvicorn signal handling.

Both `aw serve` and the GitHub emulator use it. The host process owns signals
(uvicorn's own handler re-raises SIGTERM after shutdown, which would kill the
process before our cleanup — releasing leases — could run).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator

import uvicorn


class QuietServer(uvicorn.Server):
    """uvicorn without signal handling; stop it with `should_exit = True`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


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
