"""Cleaning untrusted issue text before it reaches the agent; when two triggers are one."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)
# Zero-width and bidi controls hide instructions from human reviewers.
_INVISIBLE = {"Cf", "Co", "Cs"}
_KEEP = {"\n", "\t"}


def clean_text(text: str) -> str:
    """Remove hidden HTML comments and invisible/format characters; keep what a reader sees."""
    text = _HTML_COMMENT.sub("", text)
    return "".join(
        ch
        for ch in text
        if ch in _KEEP
        or (unicodedata.category(ch) not in _INVISIBLE and unicodedata.category(ch) != "Cc")
    )


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: object) -> object:
    """`value` (JSON-shaped) with NUL and lone surrogates replaced by U+FFFD in every
    string: text GitHub hands us may hold them, and PostgreSQL's JSONB refuses both."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


def label_key(label: str) -> str:
    """What makes two labels one: GitHub treats `Agent` and `agent` as the same label."""
    return label.strip().casefold()


def command_key(command: str) -> str:
    """What makes two comment commands one (and how a comment's line is compared to them):
    surrounding whitespace stripped, inner runs of whitespace squashed to one space."""
    return " ".join(command.split())


def first_repeat(keys: Sequence[str]) -> tuple[int, int] | None:
    """The positions of the first key equal to an earlier one (earlier first), or None."""
    seen: dict[str, int] = {}
    for index, key in enumerate(keys):
        first = seen.setdefault(key, index)
        if first != index:
            return first, index
    return None
