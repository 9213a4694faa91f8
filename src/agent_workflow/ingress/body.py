"""Reading a request body without ever holding more than the configured cap
(`AW_WEBHOOK_MAX_BODY_BYTES`) or waiting for it longer than the deadline
(`AW_WEBHOOK_BODY_TIMEOUT_S`)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request

from agent_workflow.core.errors import AgentWorkflowError


class BodyRejected(AgentWorkflowError):
    """The body cannot be read as sent; `status` is the HTTP answer (400, 408 or 413)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_limited(request: Request, limit: int, timeout_s: float) -> bytes:
    """The raw body, or `BodyRejected(413)` as soon as it is known to exceed `limit` bytes.

    A declared Content-Length over the cap is refused before reading anything; a
    chunked (or lying) body is refused as soon as the bytes read pass the cap, so
    a sender cannot make us buffer more than `limit` plus one chunk. A body not
    complete within `timeout_s` of the start is `BodyRejected(408)`: the answer goes
    out with the body unread, so the server closes the connection (a slow client
    cannot hold one open by trickling bytes).
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise BodyRejected(400, "malformed Content-Length") from None
        if length > limit:
            raise BodyRejected(413, f"body of {length} bytes exceeds the {limit}-byte limit")
    received = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                received += chunk
                if len(received) > limit:
                    raise BodyRejected(413, f"body exceeds the {limit}-byte limit")
    except TimeoutError:
        raise BodyRejected(408, f"body not received within {timeout_s:g} s") from None
    return bytes(received)
