"""The fake Messages API on its own, over real HTTP (no CLI involved)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.support.fake_anthropic import (
    ApiError,
    FakeAnthropic,
    Reply,
    Script,
    ToolUse,
    call,
    mentions,
    say,
    steps,
)

TOOLS = [{"name": "Read", "description": "read", "input_schema": {"type": "object"}}]


def body(*messages: dict[str, Any], stream: bool = False, tools: bool = True) -> dict[str, Any]:
    """A Messages API request body."""
    return {
        "model": "claude-test",
        "max_tokens": 100,
        "stream": stream,
        "system": [{"type": "text", "text": "You are a test."}],
        "messages": list(messages),
        **({"tools": TOOLS} if tools else {}),
    }


def user(text: str) -> dict[str, Any]:
    """A user message."""
    return {"role": "user", "content": text}


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """Parse a server-sent-event stream into (event, data) pairs."""
    events = []
    for chunk in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in chunk.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


async def test_fake__streams_text_and_tool_use_blocks() -> None:
    reply = Reply(text="Reading.", tool_uses=(ToolUse("Read", {"file_path": "a/long/path.txt"}),))
    async with FakeAnthropic(Script().main(reply)) as fake, httpx.AsyncClient() as client:
        resp = await client.post(f"{fake.base_url}/v1/messages", json=body(user("go"), stream=True))

    events = sse_events(resp.text)
    names = [e for e, _ in events]
    assert names[0] == "message_start"
    assert names[-2:] == ["message_delta", "message_stop"]
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    tool_start = next(d for e, d in events if e == "content_block_start" and d["index"] == 1)
    assert tool_start["content_block"]["name"] == "Read"
    partial = "".join(
        d["delta"]["partial_json"]
        for e, d in events
        if e == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    )
    assert json.loads(partial) == {"file_path": "a/long/path.txt"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert fake.recorder.all()[0].completed


async def test_fake__answers_json_when_not_streaming_and_errors_as_asked() -> None:
    script = (
        Script().on(mentions("fail"), Reply(error=ApiError(400, message="nope"))).main(say("hi"))
    )
    async with FakeAnthropic(script) as fake, httpx.AsyncClient() as client:
        ok = await client.post(f"{fake.base_url}/v1/messages", json=body(user("hello")))
        bad = await client.post(f"{fake.base_url}/v1/messages", json=body(user("please fail")))
        count = await client.post(
            f"{fake.base_url}/v1/messages/count_tokens", json=body(user("x" * 400))
        )
        other = await client.get(f"{fake.base_url}/v1/unknown")

    assert ok.json()["content"] == [{"type": "text", "text": "hi"}]
    assert ok.json()["stop_reason"] == "end_turn"
    assert bad.status_code == 400
    assert bad.json()["error"] == {"type": "invalid_request_error", "message": "nope"}
    assert count.json()["input_tokens"] > 50
    assert other.status_code == 404
    assert [r.path for r in fake.recorder.all()][-1] == "/v1/unknown"


async def test_fake__steps_follow_tool_results_and_side_requests_get_the_default() -> None:
    script = Script().main(steps(call("Read", {"file_path": "x"}), say("finished")))
    first = [user("go")]
    second = [
        *first,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "X"}]},
    ]
    async with FakeAnthropic(script) as fake, httpx.AsyncClient() as client:
        r1 = await client.post(f"{fake.base_url}/v1/messages", json=body(*first))
        r2 = await client.post(f"{fake.base_url}/v1/messages", json=body(*second))
        side = await client.post(
            f"{fake.base_url}/v1/messages", json=body(user("title?"), tools=False)
        )

    assert r1.json()["content"][0]["name"] == "Read"
    assert r2.json()["content"] == [{"type": "text", "text": "finished"}]
    assert side.json()["content"] == [{"type": "text", "text": "ok"}]
    assert len(fake.recorder.main()) == 2
    assert len(fake.recorder.side()) == 1
    assert fake.recorder.main()[1].tool_results[0].content == "X"
    assert len(fake.recorder.fresh_starts()) == 1


async def test_fake__a_broken_script_fails_the_request_loudly() -> None:
    def broken(conv: object) -> Reply:
        raise KeyError("oops")

    async with FakeAnthropic(broken) as fake, httpx.AsyncClient() as client:
        resp = await client.post(f"{fake.base_url}/v1/messages", json=body(user("go")))

    assert resp.status_code == 400
    assert fake.errors == ["KeyError: 'oops'"]


def test_fake__serves_from_a_thread_for_synchronous_callers() -> None:
    with FakeAnthropic(Script().main(say("threaded"))).in_thread() as fake:
        resp = httpx.post(f"{fake.base_url}/v1/messages", json=body(user("go")))
    assert resp.json()["content"][0]["text"] == "threaded"
