"""The emulator's ASGI application: admin API, REST API (also under `/api/v3`), JSON 404s."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from github_emulator import admin, rest
from github_emulator.core import Emulator
from github_emulator.faults import TRANSPORT_KEY


class _ExposeTransport:
    """Puts uvicorn's connection transport into the scope so a fault can abort it.

    ASGI offers no way to drop a connection without answering; uvicorn's
    `send` is a bound method of its request cycle, which holds the transport.
    Without it (another server), a drop falls back to raising, see `DroppedResponse`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is not None:
                scope[TRANSPORT_KEY] = transport
        await self.app(scope, receive, send)


def build_app(emulator: Emulator) -> ASGIApp:
    """The ASGI app serving `emulator`."""
    app = Starlette(
        routes=[
            *admin.routes(),
            *rest.routes(),
            Mount("/api/v3", routes=rest.routes()),
            rest.fallback(),
        ]
    )
    app.state.emulator = emulator
    return _ExposeTransport(app)
