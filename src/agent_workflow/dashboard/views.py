"""What the pages say: a phase's state in words, GitHub links, totals. Pure functions."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from agent_workflow.core.effects import EffectKind
from agent_workflow.core.model import Phase, PhaseStatus
from agent_workflow.core.recovery import lease_free
from agent_workflow.store.dashboard import TaskOutcome


class StateWord(StrEnum):
    """A phase's state as a person reads it."""

    PENDING = "pending"  # waiting for a worker (never claimed, or its worker died)
    ACTIVE = "active"  # a worker holds it under a live lease
    COMPLETE = "complete"
    BLOCKED = "blocked"  # the agent could not finish: a /retry starts a new attempt
    FAILED = "failed"  # gave up after repeated errors


def phase_state(status: str, lease_until: float | None, now: float) -> StateWord:
    """The word for a stored phase status. An active phase whose lease lapsed is
    `pending`: nobody works on it until the sweeper hands it to the next worker.
    An unknown status is a loud error (a new status needs a word here)."""
    match PhaseStatus(status):
        case PhaseStatus.PENDING:
            return StateWord.PENDING
        case PhaseStatus.ACTIVE:
            # The core's own rule (`recovery_point`): a free lease makes it claimable.
            return StateWord.PENDING if lease_free(lease_until, now) else StateWord.ACTIVE
        case PhaseStatus.COMPLETE:
            return StateWord.COMPLETE
        case PhaseStatus.BLOCKED:
            return StateWord.BLOCKED
        case PhaseStatus.FAILED:
            return StateWord.FAILED
        case other:  # pragma: no cover - PhaseStatus has no other member
            raise AssertionError(f"phase status {other!r} has no word")


def web_base(api_url: str) -> str:
    """GitHub's web address for an API address: api.github.com → github.com, and a
    GitHub Enterprise Server's `https://host/api/v3` → `https://host`."""
    url = api_url.rstrip("/")
    if url == "https://api.github.com":
        return "https://github.com"
    for suffix in ("/api/v3", "/api"):
        if url.endswith(suffix):
            return url.removesuffix(suffix)
    return url


@dataclass(frozen=True)
class Links:
    """Links to GitHub pages of a task's repository."""

    base: str

    def issue(self, repo: str, number: int) -> str:
        """The issue (or pull request: GitHub redirects) page."""
        return f"{self.base}/{repo}/issues/{number}"

    def pull(self, repo: str, number: int) -> str:
        """The pull request page."""
        return f"{self.base}/{repo}/pull/{number}"

    def effect(
        self,
        repo: str,
        issue: int,
        pr: int | None,
        phase: str,
        kind: str,
        external_id: str | None,
    ) -> str | None:
        """Where an effect can be seen on GitHub (None: not performed, or nothing to see).

        A round's comments go on the pull request; a reply's id is a review comment's.
        """
        on = pr if phase in {Phase.REVISE.value, Phase.REPAIR.value} and pr else issue
        match kind:
            case EffectKind.OPEN_PR:
                return (
                    self.pull(repo, int(external_id))
                    if external_id and _number(external_id)
                    else None
                )
            case EffectKind.COMMENT:
                if not _number(external_id):
                    return None
                return f"{self.issue(repo, on)}#issuecomment-{external_id}"
            case EffectKind.REPLY:
                if not _number(external_id) or pr is None:
                    return None
                return f"{self.pull(repo, pr)}#discussion_r{external_id}"
            case EffectKind.ADD_LABELS | EffectKind.REMOVE_LABEL:
                return self.issue(repo, on)
            case _:
                return None


def _number(value: str | None) -> bool:
    return value is not None and value.isdigit()


@dataclass
class Totals:
    """Cost, tasks, success rate and median time from label to pull request of a group."""

    name: str
    tasks: int = 0
    cost_usd: float = 0.0
    succeeded: int = 0  # a pull request was opened
    ended: int = 0  # a pull request was opened, or a phase blocked or failed
    to_pr_s: list[float] = field(default_factory=list)

    @property
    def success_rate(self) -> float | None:
        """Share of the ended tasks that opened a pull request (None: none ended)."""
        return self.succeeded / self.ended if self.ended else None

    @property
    def median_to_pr_s(self) -> float | None:
        """Median seconds from the task's creation (the label) to its pull request."""
        return statistics.median(self.to_pr_s) if self.to_pr_s else None

    def add(self, task: TaskOutcome) -> None:
        """Count one task."""
        self.tasks += 1
        self.cost_usd += task.cost_usd
        if task.pr_opened_at is not None:
            self.succeeded += 1
            self.to_pr_s.append(max(0.0, task.pr_opened_at - task.created_at))
        if task.pr_opened_at is not None or task.ended_badly:
            self.ended += 1


def totals(outcomes: Iterable[TaskOutcome]) -> tuple[list[Totals], list[Totals]]:
    """Totals per repository (by name) and per UTC day of creation (newest first)."""
    repos: dict[str, Totals] = {}
    days: dict[str, Totals] = {}
    for task in outcomes:
        day = time.strftime("%Y-%m-%d", time.gmtime(task.created_at))
        repos.setdefault(task.repo, Totals(task.repo)).add(task)
        days.setdefault(day, Totals(day)).add(task)
    return (
        sorted(repos.values(), key=lambda t: t.name),
        sorted(days.values(), key=lambda t: t.name, reverse=True),
    )


def duration(seconds: float | None) -> str:
    """A short human duration: `42 s`, `3.5 min`, `2.0 h`, or `–`."""
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def when(epoch: float | None) -> str:
    """A UTC timestamp as `YYYY-MM-DD HH:MM:SS`, or `–`."""
    if epoch is None:
        return "–"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))
