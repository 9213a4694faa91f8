"""Every request the fake received, kept for assertions."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.fake_anthropic.conversation import Conversation
from tests.support.fake_anthropic.script import Reply


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request, and for `POST /v1/messages` the reply the script chose."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or None
    reply: Reply | None = None
    completed: bool = False  # the whole reply was sent (False: the client went away first)

    @property
    def is_messages(self) -> bool:
        """True for `POST /v1/messages` (not count_tokens or anything else)."""
        return self.method == "POST" and self.path.rstrip("/") == "/v1/messages"

    @property
    def conversation(self) -> Conversation:
        """The request as a `Conversation` (empty for non-JSON bodies)."""
        body = self.body if isinstance(self.body, dict) else {}
        return Conversation(body=body, headers=self.headers)


@dataclass
class Recorder:
    """A thread-safe list of `RecordedRequest`s with the filters tests need."""

    _items: list[RecordedRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, item: RecordedRequest) -> int:
        """Append a request; returns its index (for `replace`)."""
        with self._lock:
            self._items.append(item)
            return len(self._items) - 1

    def replace(self, index: int, item: RecordedRequest) -> None:
        """Swap the request at `index` (used to mark a reply as completed)."""
        with self._lock:
            self._items[index] = item

    def all(self) -> list[RecordedRequest]:
        """Every request so far, in arrival order."""
        with self._lock:
            return list(self._items)

    def messages(self, where: Callable[[Conversation], bool] | None = None) -> list[Conversation]:
        """`POST /v1/messages` requests as conversations, optionally filtered."""
        convs = [r.conversation for r in self.all() if r.is_messages]
        return [c for c in convs if where is None or where(c)]

    def main(self, session_id: str | None = None) -> list[Conversation]:
        """The agent's own turns (requests offering tools), optionally for one session."""
        return self.messages(
            lambda c: c.is_main and (session_id is None or c.session_id == session_id)
        )

    def side(self) -> list[Conversation]:
        """The CLI's side requests (titles, summaries, ...): messages offering no tools."""
        return self.messages(lambda c: not c.is_main)

    def fresh_starts(self, session_id: str | None = None) -> list[Conversation]:
        """Main requests that begin a conversation (no earlier assistant turn)."""
        return [c for c in self.main(session_id) if c.turn == 0]

    def clear(self) -> None:
        """Forget everything recorded so far."""
        with self._lock:
            self._items.clear()
