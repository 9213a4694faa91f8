"""The `Forge` protocol: the handful of GitHub operations the core needs.

Mutations raise `UncertainOutcome` when the request may have been applied
(5xx, timeout, dropped response) and `ForgeError` when it definitely was not.
Reads (`list_comments`, `find_pull_request`, `permission`) are for
reconciliation and trust only; the happy path makes none of the first two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

Permission = Literal["admin", "maintain", "write", "triage", "read", "none"]


@dataclass(frozen=True)
class Comment:
    """An issue comment as the forge reports it."""

    id: int
    body: str
    author: str = ""


@dataclass(frozen=True)
class PullRequest:
    """A pull request as the forge reports it."""

    number: int
    head: str
    state: str = "open"
    merged: bool = False
    url: str = ""


@runtime_checkable
class Forge(Protocol):
    """What the core asks of GitHub (or the emulator, or the in-memory twin)."""

    async def create_comment(self, repo: str, issue_number: int, body: str) -> int:
        """Post a comment; return its id."""
        ...

    async def add_labels(self, repo: str, issue_number: int, labels: Sequence[str]) -> None:
        """Add labels (idempotent by nature)."""
        ...

    async def remove_label(self, repo: str, issue_number: int, label: str) -> None:
        """Remove a label; an absent label counts as success, a missing issue does not."""
        ...

    async def open_pull_request(
        self, repo: str, *, head: str, base: str, title: str, body: str
    ) -> PullRequest:
        """Open a PR; if one already exists for `head`, adopt and return it."""
        ...

    async def find_pull_request(self, repo: str, head: str) -> PullRequest | None:
        """Find a PR by head branch in any state (reconciliation only)."""
        ...

    async def list_comments(self, repo: str, issue_number: int) -> list[Comment]:
        """All comments of an issue (reconciliation only)."""
        ...

    async def permission(self, repo: str, user: str) -> Permission:
        """The user's permission on the repository."""
        ...
