"""The emulated GitHub world of a chaos run: who is who, and the timeline of what happened."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Final

REPO: Final = "chaos/widgets"
"""The one repository every issue of a run lives in."""
USER: Final = "alice"
"""A trusted user (write permission): labels, approves, retries, merges."""
STRANGER: Final = "mallory"
"""An untrusted user (read permission): her commands must be ignored."""
BOT: Final = "agent-workflow[bot]"
"""The account behind the token: every bot comment, label and PR is by this login."""
TOKEN: Final = "chaos-token"
SECRET: Final = "chaos-webhook-secret"
HOOK_ID: Final = "1"
"""The emulator's hook id (`X-GitHub-Hook-ID`), part of a stored delivery's key."""

MARKER_RE: Final = r"<!-- agent-workflow:effect=(\S+) sig=[0-9a-f]{64} -->"
"""The hidden effect marker every bot comment ends with (DESIGN §5)."""


@dataclass
class Timeline:
    """What happened when, in seconds since the run started."""

    started: float = field(default_factory=time.monotonic)
    entries: list[tuple[float, str]] = field(default_factory=list)

    def now(self) -> float:
        """Seconds since the start."""
        return time.monotonic() - self.started

    def add(self, what: str) -> None:
        """Record one step."""
        self.entries.append((round(self.now(), 2), what))
