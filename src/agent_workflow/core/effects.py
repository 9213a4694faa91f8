"""Effects: the keyed GitHub side effects a phase produces, and their hidden markers."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from enum import StrEnum

MARKER_PREFIX = "<!-- agent-workflow:effect="
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


def marker(key: str) -> str:
    """The hidden marker every bot comment ends with; reconciliation searches for it."""
    return f"{MARKER_PREFIX}{key} -->"


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

    def fingerprint(self) -> str:
        """A digest of what the request acts on, stored so a changed target under an old key
        is visible. Texts are left out: a hook begins its effects before every text is known
        (the comment linking a pull request needs the PR's number)."""
        target = asdict(self)
        del target["body"], target["title"]
        return hashlib.sha256(json.dumps(target, sort_keys=True).encode()).hexdigest()

    @property
    def marked_body(self) -> str:
        """The body with the hidden effect marker appended."""
        return f"{self.body.rstrip()}\n\n{marker(self.key)}"


class EffectStatus(StrEnum):
    """`started`: the request may have been sent. `done`: it was, and we know the result."""

    STARTED = "started"
    DONE = "done"


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
