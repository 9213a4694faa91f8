"""Reading usage off a response as its bytes pass, however they are split."""

from __future__ import annotations

import json

import pytest

from agent_workflow.agents.model_metering import UNKNOWN_MODEL_PRICE, UsageCounter, price_of


def _sse(*events: dict[str, object]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


STREAM = _sse(
    {
        "type": "message_start",
        "message": {
            "model": "claude-sonnet-4-5",
            "usage": {
                "input_tokens": 1000,
                "output_tokens": 1,
                "cache_creation_input_tokens": 200,
                "cache_read_input_tokens": 3000,
            },
        },
    },
    {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "hi"}},
    {"type": "message_delta", "usage": {"output_tokens": 500}},
    {"type": "message_stop"},
)


@pytest.mark.parametrize("size", [1, 7, 64, len(STREAM)])
def test_counter__reads_a_stream_split_anywhere(size: int) -> None:
    counter = UsageCounter(streaming=True)
    starts = [counter.feed(STREAM[i : i + size]) for i in range(0, len(STREAM), size)]
    counter.finish()
    assert starts.count(True) == 1  # the input side is known once, at message_start
    assert (counter.model, counter.input_tokens, counter.output_tokens) == (
        "claude-sonnet-4-5",
        1000,
        500,
    )
    # sonnet: $3 in, $15 out, cache write 1.25x, cache read 0.1x (per million tokens)
    expected = (1000 * 3 + 500 * 15 + 200 * 3.75 + 3000 * 0.3) / 1_000_000
    assert counter.cost_usd == pytest.approx(expected)


def test_counter__reads_a_json_message() -> None:
    counter = UsageCounter(streaming=False)
    body = json.dumps(
        {
            "type": "message",
            "model": "claude-haiku-4-5",
            "usage": {"input_tokens": 10, "output_tokens": 20},
        }
    ).encode()
    counter.feed(body[:5])
    counter.feed(body[5:])
    counter.finish()
    assert (counter.input_tokens, counter.output_tokens, counter.started) == (10, 20, True)


def test_counter__ignores_garbage_and_bounds_its_buffer() -> None:
    counter = UsageCounter(streaming=True)
    counter.feed(b"data: {not json\n" + b"x" * (2 << 20))
    counter.finish()
    assert not counter.started
    assert counter.cost_usd == 0


def test_price__unknown_models_are_priced_as_the_dearest() -> None:
    assert price_of("some-new-model") == UNKNOWN_MODEL_PRICE
    assert price_of("claude-opus-4-1-20250805").input == 15.0
    assert price_of("claude-opus-4-5").input == 5.0
    assert price_of("claude-3-5-haiku-latest").input == 0.8
