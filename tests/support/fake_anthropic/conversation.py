"""A read-only view of one Messages API request, for scripts and assertions.

The Claude Code CLI sends the whole conversation on every request; everything
a script needs to decide its answer (which turn this is, what the last tool
returned, which session is asking) is in the request, so scripts stay
stateless and keep working across a resumed session.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolResult:
    """A `tool_result` block the CLI sent back for one of our `tool_use` blocks."""

    tool_use_id: str
    content: str
    is_error: bool


def _block_text(block: Any) -> str:
    """The human-readable text of one content block (text, tool_result, tool_use)."""
    if isinstance(block, str):
        return block
    if not isinstance(block, Mapping):
        return ""
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", ""))
    if kind == "tool_result":
        return _content_text(block.get("content", ""))
    if kind == "tool_use":
        return json.dumps(block.get("input", {}))
    return ""


def _content_text(content: Any) -> str:
    """Join the text of a message's `content` (a string or a list of blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "\n".join(t for t in (_block_text(b) for b in content) if t)
    return ""


def _blocks(content: Any) -> list[Mapping[str, Any]]:
    """A message's content as a list of block dicts (a bare string becomes one text block)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, Sequence):
        return [b for b in content if isinstance(b, Mapping)]
    return []


@dataclass(frozen=True)
class Conversation:
    """One request to `POST /v1/messages`, with helpers over its body and headers."""

    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def model(self) -> str:
        """The model the CLI asked for (side requests often use a small model)."""
        return str(self.body.get("model", ""))

    @property
    def stream(self) -> bool:
        """True when the CLI asked for a server-sent-event stream."""
        return bool(self.body.get("stream", False))

    @property
    def session_id(self) -> str:
        """The CLI session this request belongs to (`x-claude-code-session-id`)."""
        return self.headers.get("x-claude-code-session-id", "")

    @property
    def system(self) -> str:
        """The system prompt, joined into one string."""
        return _content_text(self.body.get("system", ""))

    @property
    def messages(self) -> list[Mapping[str, Any]]:
        """The conversation's messages, oldest first (roles user/assistant/system)."""
        raw = self.body.get("messages", [])
        return [m for m in raw if isinstance(m, Mapping)] if isinstance(raw, list) else []

    @property
    def tool_names(self) -> list[str]:
        """Names of the tools offered to the model in this request."""
        tools = self.body.get("tools", [])
        return [str(t.get("name")) for t in tools if isinstance(t, Mapping)]

    @property
    def turn(self) -> int:
        """How many assistant messages precede this request: 0 for the first answer."""
        return sum(1 for m in self.messages if m.get("role") == "assistant")

    @property
    def steps_done(self) -> int:
        """How many earlier assistant messages called a tool.

        Within one agent run every answer but the last calls a tool, so this is
        the index of the step being asked for. Unlike `turn` it ignores the
        filler the CLI inserts when resuming an interrupted session (an
        assistant "No response requested." before the new prompt).
        """
        return sum(
            1
            for m in self.messages
            if m.get("role") == "assistant"
            and any(b.get("type") == "tool_use" for b in _blocks(m.get("content")))
        )

    @property
    def user_texts(self) -> list[str]:
        """The plain text of every user message (tool results excluded), oldest first."""
        texts = []
        for m in self.messages:
            if m.get("role") != "user":
                continue
            text = "\n".join(
                str(b.get("text", "")) for b in _blocks(m.get("content")) if b.get("type") == "text"
            )
            if text:
                texts.append(text)
        return texts

    @property
    def last_user_text(self) -> str:
        """The text of the last user message that has any (tool results excluded)."""
        texts = self.user_texts
        return texts[-1] if texts else ""

    @property
    def tool_results(self) -> list[ToolResult]:
        """The `tool_result` blocks of the last user message (answers to the previous turn)."""
        for m in reversed(self.messages):
            if m.get("role") != "user":
                continue
            return [
                ToolResult(
                    tool_use_id=str(b.get("tool_use_id", "")),
                    content=_content_text(b.get("content", "")),
                    is_error=bool(b.get("is_error", False)),
                )
                for b in _blocks(m.get("content"))
                if b.get("type") == "tool_result"
            ]
        return []

    @property
    def is_main(self) -> bool:
        """True for a turn of the agent's own conversation (it offers tools).

        The CLI's side requests (titles, summaries, classifiers) offer no tools.
        """
        return bool(self.tool_names)

    def text(self) -> str:
        """Everything in the request as one string: system prompt and all messages."""
        parts = [self.system] + [_content_text(m.get("content")) for m in self.messages]
        return "\n".join(parts)

    def mentions(self, needle: str) -> bool:
        """True when `needle` occurs anywhere in the system prompt or the messages."""
        return needle in self.text()
