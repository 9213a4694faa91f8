"""Body decoding: only JSON objects, and only what both databases can store."""

from __future__ import annotations

import json

import pytest

from agent_workflow.core.errors import BadEvent
from agent_workflow.ingress.payload import decode


def test_decode__object() -> None:
    assert decode(b'{"a": [1, "x"]}', max_depth=64) == {"a": [1, "x"]}


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b'{"a": 1',
        b"[1, 2]",
        b'"text"',
        b"null",
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": "\xff"}',  # not UTF-8
        b"payload=%7B%7D",  # a webhook configured as form-encoded
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,  # nesting deep enough to overflow the decoder
    ],
    ids=[
        "empty",
        "text",
        "truncated",
        "array",
        "string",
        "null",
        "nan",
        "infinity",
        "latin1",
        "form",
        "deep",
    ],
)
def test_decode__not_an_object__bad_event(raw: bytes) -> None:
    with pytest.raises(BadEvent):
        decode(raw, max_depth=64)


def test_decode__nul_and_lone_surrogates__replaced() -> None:
    raw = b'{"body": "a\\u0000b \\ud800 \\udfff \\ud83d\\ude00 \\u00e9", "k\\u0000": 1}'
    assert decode(raw, max_depth=64) == {"body": "a\ufffdb \ufffd \ufffd 😀 é", "k\ufffd": 1}


def test_decode__escaped_backslash_before_u0000__kept_literally() -> None:
    """`\\\\u0000` in JSON is a backslash followed by the text `u0000`, not a NUL."""
    raw = json.dumps({"body": "C:\\u0000 and \\ud800"}).encode()
    assert decode(raw, max_depth=64) == {"body": "C:\\u0000 and \\ud800"}
