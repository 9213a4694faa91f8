"""The "I am blocked" convention shared by every agent.

An agent declares that it cannot finish by starting its final message with a
line `BLOCKED: <reason>` (the prompt templates tell it so). The caller turns
that into `Outcome.BLOCKED` with the reason.
"""

from __future__ import annotations

BLOCKED_PREFIX = "BLOCKED:"

# Used when the agent wrote the prefix but no reason after it.
_UNSPECIFIED = "the agent said it is blocked without giving a reason"


def blocked_reason(text: str) -> str | None:
    """The reason when the first non-blank line of `text` is `BLOCKED: <reason>`, else None."""
    for line in text.splitlines():
        stripped = line.strip().lstrip("*_# ").rstrip("*_ ")
        if not stripped:
            continue
        if not stripped.upper().startswith(BLOCKED_PREFIX):
            return None
        return stripped[len(BLOCKED_PREFIX) :].strip("*_ \t") or _UNSPECIFIED
    return None
