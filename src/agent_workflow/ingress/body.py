"""Reading a request body without ever holding more than the configured cap
(`AW_WEBHOOK_MAX_BODY_BYTES`)."""

from __future__ import annotations

from starlette.requests import Request

from agent_workflow.core.errors import AgentWorkflowError


class BodyRejected(AgentWorkflowError):
    """The body cannot be read as sent; `status` is the HTTP answer (400 or 413)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_limited(request: Request, limit: int) -> bytes:
    """The raw body, or `BodyRejected(413)` as soon as it is known to exceed `limit` bytes.

    A declared Content-Length over the cap is refused before reading anything; a
    chunked (or lying) body is refused as soon as the bytes read pass the cap, so
    a sender cannot make us buffer more than `limit` plus one chunk.
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
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise BodyRejected(413, f"body exceeds the {limit}-byte limit")
    return bytes(received)
