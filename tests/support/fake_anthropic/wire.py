"""The Messages API wire format: a `Reply` as a JSON message or as SSE events."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

from tests.support.fake_anthropic.script import ApiError, Reply

_message_ids = itertools.count(1)

# Split tool input JSON into pieces this long, as the real API streams it in fragments.
_JSON_CHUNK = 16


def _content_blocks(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.text:
        blocks.append({"type": "text", "text": reply.text})
    for use in reply.tool_uses:
        blocks.append({"type": "tool_use", "id": use.id, "name": use.name, "input": use.input})
    return blocks


def _usage(reply: Reply) -> dict[str, int]:
    return {
        "input_tokens": reply.input_tokens,
        "output_tokens": reply.output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def new_message_id() -> str:
    """A fresh `msg_...` id."""
    return f"msg_fake_{next(_message_ids):06d}"


def message_json(reply: Reply, model: str, message_id: str) -> dict[str, Any]:
    """The non-streaming response body for `reply`."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": _content_blocks(reply),
        "stop_reason": reply.effective_stop_reason,
        "stop_sequence": None,
        "usage": _usage(reply),
    }


def error_json(error: ApiError) -> dict[str, Any]:
    """The body of an API error response."""
    return {"type": "error", "error": {"type": error.type, "message": error.message}}


def sse(event: str, data: dict[str, Any]) -> str:
    """One server-sent event."""
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def message_start(reply: Reply, model: str, message_id: str) -> str:
    """The `message_start` event (sent before any delay, like a real slow model)."""
    message = message_json(reply, model, message_id)
    message.update(content=[], stop_reason=None, usage={**_usage(reply), "output_tokens": 1})
    return sse("message_start", {"type": "message_start", "message": message})


def _block_events(index: int, block: dict[str, Any]) -> Iterator[str]:
    if block["type"] == "text":
        yield sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "text", "text": ""},
            },
        )
        yield sse(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "text_delta", "text": block["text"]},
            },
        )
    else:
        start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        yield sse(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": start},
        )
        raw = json.dumps(block["input"])
        for i in range(0, len(raw), _JSON_CHUNK):
            delta = {"type": "input_json_delta", "partial_json": raw[i : i + _JSON_CHUNK]}
            yield sse(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
    yield sse("content_block_stop", {"type": "content_block_stop", "index": index})


def message_rest(reply: Reply) -> Iterator[str]:
    """Every event after `message_start`: the blocks, `message_delta`, `message_stop`."""
    for index, block in enumerate(_content_blocks(reply)):
        yield from _block_events(index, block)
    yield sse(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": reply.effective_stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": reply.output_tokens},
        },
    )
    yield sse("message_stop", {"type": "message_stop"})
