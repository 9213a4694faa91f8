"""What the fake answers: replies, and scripts that choose one per request.

A *responder* is any callable `Conversation -> Reply`. `Script` is the usual
one: ordered rules, first match answers, with a default for the CLI's side
requests. `steps(...)` answers the agent's own conversation by step number (tool
calls made so far), which stays right across a resumed session because the
CLI resends the earlier turns.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.support.fake_anthropic.conversation import Conversation

_ids = itertools.count(1)


def _next_tool_id() -> str:
    return f"toolu_fake_{next(_ids):06d}"


@dataclass(frozen=True)
class ToolUse:
    """A `tool_use` block the model emits, e.g. `ToolUse("Write", {"file_path": ..., ...})`."""

    name: str
    input: dict[str, Any]
    id: str = field(default_factory=_next_tool_id)


@dataclass(frozen=True)
class ApiError:
    """Answer with an HTTP error instead of a message (e.g. 400 invalid_request_error).

    The CLI retries 429/5xx/529 with backoff, so prefer a 4xx for a quick failure.
    """

    status: int = 400
    type: str = "invalid_request_error"
    message: str = "scripted failure"


@dataclass(frozen=True)
class Reply:
    """One assistant message: optional text, then tool calls.

    `delay_s` holds the answer back after the response headers (and, when
    streaming, after `message_start`), which is how a test makes a turn slow
    enough to kill the CLI in the middle of it. The token counts drive the
    cost the CLI computes, so large counts exhaust a `max_budget_usd`.
    """

    text: str = ""
    tool_uses: tuple[ToolUse, ...] = ()
    delay_s: float = 0.0
    stop_reason: str | None = None  # default: "tool_use" when there are tool calls, else "end_turn"
    input_tokens: int = 10
    output_tokens: int = 10
    error: ApiError | None = None

    @property
    def effective_stop_reason(self) -> str:
        """The stop reason sent to the CLI."""
        if self.stop_reason is not None:
            return self.stop_reason
        return "tool_use" if self.tool_uses else "end_turn"


def say(text: str, **kwargs: Any) -> Reply:
    """A reply with text only (ends the agent's turn)."""
    return Reply(text=text, **kwargs)


def call(name: str, tool_input: dict[str, Any], text: str = "", **kwargs: Any) -> Reply:
    """A reply that calls one tool (the CLI runs it and asks again with its result)."""
    return Reply(text=text, tool_uses=(ToolUse(name, tool_input),), **kwargs)


Responder = Callable[[Conversation], Reply]
Predicate = Callable[[Conversation], bool]


@dataclass
class _Rule:
    when: Predicate
    answer: Reply | Responder
    times: int | None  # None: unlimited
    used: int = 0

    def matches(self, conv: Conversation) -> bool:
        return (self.times is None or self.used < self.times) and self.when(conv)

    def answer_for(self, conv: Conversation) -> Reply:
        self.used += 1
        return self.answer if isinstance(self.answer, Reply) else self.answer(conv)


DEFAULT_SIDE_REPLY = Reply(text="ok")


class Script:
    """Ordered rules; the first whose predicate matches answers the request.

    Requests no rule matches get `default` (by default a short "ok", which is
    what side requests such as title generation are happy with).
    """

    def __init__(self, default: Reply | Responder = DEFAULT_SIDE_REPLY) -> None:
        """Create an empty script answering everything with `default`."""
        self._rules: list[_Rule] = []
        self._default = default

    def on(self, when: Predicate, answer: Reply | Responder, *, times: int | None = None) -> Script:
        """Add a rule (after the existing ones); `times` limits how often it may answer."""
        self._rules.append(_Rule(when, answer, times))
        return self

    def main(self, answer: Reply | Responder, *, times: int | None = None) -> Script:
        """Add a rule for the agent's own conversation (requests that offer tools)."""
        return self.on(lambda c: c.is_main, answer, times=times)

    def __call__(self, conv: Conversation) -> Reply:
        """Answer one request."""
        for rule in self._rules:
            if rule.matches(conv):
                return rule.answer_for(conv)
        default = self._default
        return default if isinstance(default, Reply) else default(conv)


def steps(*replies: Reply | Responder, then: Reply | None = None) -> Responder:
    """Answer step n of a conversation with `replies[n]` (see `Conversation.steps_done`).

    Past the end, answer `then` (default: a closing "done."). Because the step
    number is read from the conversation, a resumed session picks up where it
    stopped without the script keeping state.
    """
    closing = then if then is not None else Reply(text="done.")

    def respond(conv: Conversation) -> Reply:
        if conv.steps_done >= len(replies):
            return closing
        answer = replies[conv.steps_done]
        return answer if isinstance(answer, Reply) else answer(conv)

    return respond


def first_time(slow: Reply, afterwards: Reply) -> Responder:
    """Answer `slow` the first time this responder is asked, `afterwards` every later time.

    Typical use: a turn that is slow once (the test kills the CLI during it)
    and quick when the resumed session asks again.
    """
    asked = [0]

    def respond(conv: Conversation) -> Reply:
        asked[0] += 1
        return slow if asked[0] == 1 else afterwards

    return respond


def all_of(*predicates: Predicate) -> Predicate:
    """A predicate true when every one of `predicates` is."""
    return lambda conv: all(p(conv) for p in predicates)


def mentions(needle: str) -> Predicate:
    """A predicate: the request mentions `needle` somewhere (system prompt or messages)."""
    return lambda conv: conv.mentions(needle)


def replies_from(items: Iterable[Reply]) -> Responder:
    """Answer with the next reply of `items` on every call (stateful; last one repeats)."""
    queue = list(items)

    def respond(conv: Conversation) -> Reply:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return respond
