"""Effects: the keyed GitHub side effects a phase produces, and their hidden markers."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import asdict, dataclass
from enum import StrEnum

MARKER_PREFIX = "<!-- agent-workflow:effect="
MARKER_PATTERN = r"<!-- agent-workflow:effect=(\S+) sig=([0-9a-f]{64}) -->"
"""A marker: the effect's key, then the HMAC-SHA256 of the key under the marker secret."""
# Only the marker a body ends with counts: text before it cannot pose as another effect.
_TRAILING_MARKER = re.compile(MARKER_PATTERN + r"\s*\Z")
# Hints (e.g. "the plan is not ready yet") are at most once, not exactly once: no phase
# owns them, so one whose request was cut off stays `started` until the same hint is
# needed again (then it is reconciled). Checks of "nothing outstanding" skip them.
HINT_PREFIX = "hint-"


class EffectKind(StrEnum):
    """What an effect does on the forge."""

    COMMENT = "comment"
    ADD_LABELS = "add_labels"
    REMOVE_LABEL = "remove_label"
    OPEN_PR = "open_pr"
    REPLY = "reply"  # a reply in a pull request review thread


@dataclass(frozen=True, repr=False)
class Markers:
    """Signs and checks the hidden marker every bot comment and PR body ends with.

    The signature is an HMAC of the key under a server secret: deterministic (the same
    key is found again after a restart), and nobody without the secret can mint one.
    """

    secret: bytes

    def __post_init__(self) -> None:
        if not self.secret:
            raise ValueError("the marker secret must not be empty")

    def signature(self, key: str) -> str:
        """HMAC-SHA256 of `key` under the secret, hex."""
        return hmac.new(self.secret, key.encode(), hashlib.sha256).hexdigest()

    def marker(self, key: str) -> str:
        """`<!-- agent-workflow:effect=KEY sig=HMAC -->`."""
        return f"{MARKER_PREFIX}{key} sig={self.signature(key)} -->"

    def mark(self, body: str, key: str) -> str:
        """`body` with the marker of `key` appended."""
        return f"{body.rstrip()}\n\n{self.marker(key)}"

    def marks(self, body: str, key: str) -> bool:
        """True when `body` ends with the marker of `key` and its signature is ours."""
        found = _TRAILING_MARKER.search(body)
        if found is None or found.group(1) != key:
            return False
        return hmac.compare_digest(found.group(2), self.signature(key))


@dataclass(frozen=True)
class Effect:
    """One side effect with a deterministic key. Fields not used by a kind stay empty."""

    key: str
    kind: EffectKind
    repo: str
    issue_number: int
    body: str = ""
    labels: tuple[str, ...] = ()
    head: str = ""
    base: str = ""
    title: str = ""
    reply_to: int = 0  # REPLY: the review comment whose thread it answers
    draft: bool = False  # OPEN_PR: open it as a draft

    def fingerprint(self) -> str:
        """A digest of what the request acts on, stored so a changed target under an old key
        is visible. Texts are left out: a hook begins its effects before every text is known
        (the comment linking a pull request needs the PR's number)."""
        target = asdict(self)
        del target["body"], target["title"]
        return hashlib.sha256(json.dumps(target, sort_keys=True).encode()).hexdigest()


class EffectStatus(StrEnum):
    """`started`: the request may have been sent. `done`: it was, and we know the result.
    `refused`: the forge refused it definitely (`EffectRefused`); it is never sent again."""

    STARTED = "started"
    DONE = "done"
    REFUSED = "refused"


@dataclass(frozen=True)
class EffectStart:
    """An effect row to insert `started` (if absent) before its request is sent."""

    key: str
    task_id: int | None
    phase: str
    attempt: int
    kind: EffectKind
    fingerprint: str


@dataclass(frozen=True)
class EffectRow:
    """A stored effect, and whether this call created it."""

    key: str
    kind: str
    status: EffectStatus
    external_id: str | None
    fresh: bool = False


def is_hint(key: str) -> bool:
    """True for an at-most-once hint effect (see `HINT_PREFIX`)."""
    return key.rsplit("/", 1)[-1].startswith(HINT_PREFIX)


def effect_key(repo: str, issue_number: int, phase: str, attempt: int, name: str) -> str:
    """Deterministic key: the same (issue, phase, attempt, effect) always maps to it."""
    return f"{repo}#{issue_number}/{phase}/{attempt}/{name}"
