"""Constants and the webhook receiver shared by the forge tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

TOKEN = "test-token"
BOT = "agent-workflow[bot]"
REPO = "octo/demo"
SECRET = "hook-secret"


@dataclass
class Received:
    """One webhook as the receiver got it."""

    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook endpoint that records every request and answers `status`."""

    url: str = ""
    status: int = 202
    received: list[Received] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        self.received.append(Received(dict(request.headers), await request.body()))
        return Response(status_code=self.status)

    def events(self) -> list[tuple[str, str]]:
        """(event, delivery id) of everything received, in order."""
        return [
            (r.headers["x-github-event"], r.headers["x-github-delivery"]) for r in self.received
        ]
