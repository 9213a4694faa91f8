"""Decoding a webhook body into a JSON object that both databases can store.

PostgreSQL's `jsonb` rejects three things Python's `json` accepts: the escape
`\\u0000`, unpaired UTF-16 surrogate escapes such as `\\ud800`, and the constants
`NaN`/`Infinity`. GitHub sends none of the constants, so those are a malformed
body; NUL and lone surrogates can legitimately come from user-written text
(a pasted comment), so they are replaced with U+FFFD rather than losing the
delivery to a database error after GitHub has been told nothing useful.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, NoReturn

from agent_workflow.core.errors import BadEvent

# Cheap gate: most bodies contain neither escape, and those skip the rewrite.
_SUSPECT = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
# Every escape, left to right, so `\\u0000` (an escaped backslash, then text) is
# consumed as `\\` and never mistaken for a NUL escape. A well-formed surrogate
# pair is matched whole and kept; a lone \uXXXX is captured for inspection.
_ESCAPE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u([0-9a-fA-F]{4})|\\.",
    re.DOTALL,
)
_REPLACEMENT = "\\ufffd"


def decode(raw: bytes, *, max_depth: int) -> dict[str, Any]:
    """The body as a JSON object nested at most `max_depth` deep. Raises `BadEvent` otherwise."""
    try:
        text = raw.decode("utf-8")
        if _SUSPECT.search(raw):
            text = _ESCAPE.sub(_storable, text)
        value = json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:  # JSON, UTF-8 and over-deep nesting errors
        raise BadEvent(f"body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise BadEvent("body is not a JSON object")
    if _too_deep(value, max_depth):
        raise BadEvent(f"body nests deeper than {max_depth} levels")
    return value


def _too_deep(value: object, max_depth: int) -> bool:
    """Whether objects/arrays nest deeper than `max_depth` (iterative: no recursion limit)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return True
        children = node.values() if isinstance(node, dict) else node
        assert isinstance(children, Iterable)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _storable(match: re.Match[str]) -> str:
    code = match.group(1)
    if code is None:
        return match.group(0)
    point = int(code, 16)
    if point == 0 or 0xD800 <= point <= 0xDFFF:
        return _REPLACEMENT
    return match.group(0)


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")
