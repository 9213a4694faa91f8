"""Reading a Messages API response's usage, and what it costs.

The proxy sees the raw response: a JSON message, or a server-sent event stream
whose `message_start` carries the input side of the usage (known before any
output, so it is written at once) and whose `message_delta` events carry the
growing output count. `UsageCounter` follows either; `price_usd` prices it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens; caching is priced off the input price."""

    input: float
    output: float

    @property
    def cache_write(self) -> float:
        """Writing the prompt cache (5-minute entries) costs 1.25x input."""
        return self.input * 1.25

    @property
    def cache_read(self) -> float:
        """Reading it costs a tenth of input."""
        return self.input * 0.1


# Anthropic's list prices, matched on the model id in this order. An unknown model is
# priced as the dearest: a budget is a ceiling, so erring means stopping early, not late.
PRICES: tuple[tuple[tuple[str, ...], Price], ...] = (
    (("opus-4-0", "opus-4-1", "opus-4-2025", "3-opus"), Price(15.0, 75.0)),
    (("opus",), Price(5.0, 25.0)),
    (("sonnet",), Price(3.0, 15.0)),
    (("3-5-haiku",), Price(0.8, 4.0)),
    (("3-haiku",), Price(0.25, 1.25)),
    (("haiku",), Price(1.0, 5.0)),
)
UNKNOWN_MODEL_PRICE = Price(15.0, 75.0)

# A server-sent event line longer than this is not usage: drop it rather than buffer it.
_MAX_LINE_BYTES = 1 << 20


def price_of(model: str) -> Price:
    """The price of `model` (by family), or the dearest when unknown."""
    for needles, price in PRICES:
        if any(n in model for n in needles):
            return price
    return UNKNOWN_MODEL_PRICE


class UsageCounter:
    """The usage of one response, fed its bytes as they stream through."""

    def __init__(self, *, streaming: bool) -> None:
        """`streaming`: the body is server-sent events (else one JSON document)."""
        self.model = ""
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_creation_tokens = 0
        self.cache_read_tokens = 0
        self.started = False  # the input side is known (a row is worth writing)
        self._streaming = streaming
        self._buffer = bytearray()

    @property
    def cost_usd(self) -> float:
        """What the usage seen so far costs."""
        price = price_of(self.model)
        return (
            self.input_tokens * price.input
            + self.output_tokens * price.output
            + self.cache_creation_tokens * price.cache_write
            + self.cache_read_tokens * price.cache_read
        ) / 1_000_000

    def feed(self, chunk: bytes) -> bool:
        """Take the next bytes of the body; True when a `message_start` was just seen."""
        if not self._streaming:
            if len(self._buffer) + len(chunk) <= _MAX_LINE_BYTES * 16:
                self._buffer += chunk
            return False
        self._buffer += chunk
        started_now = False
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[:end]).strip()
            del self._buffer[: end + 1]
            if line.startswith(b"data:"):
                started_now |= self._event(_json(line[5:]))
        if len(self._buffer) > _MAX_LINE_BYTES:
            self._buffer.clear()
        return started_now

    def finish(self) -> None:
        """The body ended: read a JSON message's usage."""
        if not self._streaming:
            document = _json(bytes(self._buffer))
            self._buffer.clear()
            if document.get("type") == "message":
                self._message(document)

    def _event(self, event: dict[str, Any]) -> bool:
        kind = event.get("type")
        if kind == "message_start" and isinstance(event.get("message"), dict):
            self._message(event["message"])
            return True
        if kind == "message_delta" and isinstance(event.get("usage"), dict):
            self._usage(event["usage"])
        return False

    def _message(self, message: dict[str, Any]) -> None:
        if isinstance(message.get("model"), str):
            self.model = message["model"]
        if isinstance(message.get("usage"), dict):
            self._usage(message["usage"])
        self.started = True

    def _usage(self, usage: dict[str, Any]) -> None:
        # Counts in a stream are cumulative: the later value replaces the earlier.
        self.input_tokens = _count(usage, "input_tokens", self.input_tokens)
        self.output_tokens = _count(usage, "output_tokens", self.output_tokens)
        self.cache_creation_tokens = _count(
            usage, "cache_creation_input_tokens", self.cache_creation_tokens
        )
        self.cache_read_tokens = _count(usage, "cache_read_input_tokens", self.cache_read_tokens)


def _count(usage: dict[str, Any], key: str, current: int) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and value >= 0 else current


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
