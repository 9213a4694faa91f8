"""What a chaos run reports: what was injected, what GitHub ended up with, and every violation."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from chaos.checks import Violation

ISSUE_ROWS_SHOWN = 40
"""Longer runs print the first issues and every issue with something unusual."""


@dataclass(frozen=True)
class IssueSummary:
    """One issue at the end of the run."""

    issue: int
    steer: list[str]
    bot_comments: int
    pull_requests: list[int]
    labels: list[str]
    phases: dict[str, str]
    """Phase → "status (attempt N)"."""
    lifecycle_s: float | None
    """From the `agent` label to the summary comment being seen; None if it never finished."""
    rounds: list[str] = field(default_factory=list)
    """Rounds after the PR, oldest first: "revise 1 (review)", "repair 1 (checks)"."""
    round_steps: list[str] = field(default_factory=list)
    """What the users sent before merging: `review`, `checks:<failure case>`."""


@dataclass
class ChaosReport:
    """Everything a chaos run found. `ok` is False on any violation."""

    seed: int
    config: dict[str, Any]
    duration_s: float
    issues: list[IssueSummary]
    events_sent: int
    """Webhooks caused by the users' actions (labels, comments, merges)."""
    webhooks_total: int
    """Every delivery attempt the emulator made, bot-caused and redelivered ones included."""
    duplicates_delivered: int
    """Webhook copies redelivered with an already-used delivery id."""
    duplicate_jobs: int
    """Queue jobs injected as duplicates of existing work."""
    kills: int
    stops: int
    redis_restarts: int
    faults_armed: dict[str, int]
    faults_fired: dict[str, int]
    """From the emulator's counters: kind + route → times it fired."""
    github_requests: dict[str, int]
    """Mutations and reads (GET) the workers sent to GitHub, permission GETs separately."""
    unexpected_exits: list[str]
    unacknowledged_webhooks: int
    operator_redeliveries: int
    duplicates_found: int
    lost: list[int]
    stuck: list[str]
    violations: list[Violation]
    stats: dict[str, Any] = field(default_factory=dict)
    timeline: list[tuple[float, str]] = field(default_factory=list)
    workdir: str = ""
    database_url: str | None = None

    @property
    def ok(self) -> bool:
        """True when no guarantee was violated."""
        return not self.violations

    @property
    def exit_code(self) -> int:
        """0 when every guarantee held, 1 otherwise."""
        return 0 if self.ok else 1

    def as_json(self) -> dict[str, Any]:
        """The report as plain data (`--json`)."""
        data = asdict(self)
        data["ok"] = self.ok
        return data

    def to_json(self) -> str:
        """The report as a JSON document."""
        return json.dumps(self.as_json(), indent=2, default=str)

    def render(self, console: Console, *, timeline: bool = False) -> None:
        """Print the human-readable report."""
        if timeline:
            table = Table(title="timeline")
            table.add_column("t (s)", justify="right")
            table.add_column("what happened")
            for t, what in self.timeline:
                table.add_row(f"{t:.2f}", what)
            console.print(table)
        self._render_issues(console)
        faults_fired = sum(self.faults_fired.values())
        lines = [
            f"seed {self.seed}: {len(self.issues)} issues, {self.config.get('workers')} workers, "
            f"{self.duration_s:.1f} s",
            f"events sent: {self.events_sent} (webhooks in total: {self.webhooks_total}); "
            f"duplicate deliveries: {self.duplicates_delivered}; duplicate jobs: {self.duplicate_jobs}",
            f"kills: {self.kills}, stops: {self.stops}, redis restarts: {self.redis_restarts}",
            f"GitHub faults armed: {sum(self.faults_armed.values())} {dict(self.faults_armed)}; "
            f"fired: {faults_fired} {dict(self.faults_fired)}",
            f"GitHub requests: {self.github_requests}",
            f"agent runs: {self.stats.get('agent_runs_fresh')} fresh, "
            f"{self.stats.get('agent_runs_resume')} resumed; "
            f"takeover after a kill mid-agent: {self.stats.get('recovery_s')}",
            f"unacknowledged webhooks: {self.unacknowledged_webhooks} "
            f"(operator redeliveries: {self.operator_redeliveries}); "
            f"unexpected process exits: {len(self.unexpected_exits)}",
            f"rounds: {self.stats.get('revise_rounds')} revise, "
            f"{self.stats.get('repair_rounds')} repair; review replies: "
            f"{self.stats.get('review_replies')}; stopped by a limit or the loop breaker: "
            f"{len(self.stats.get('rounds_stopped', []))}; "
            f"progress comments: {self.stats.get('progress_comments')}",
            f"duplicates found: {self.duplicates_found}; lost tasks: {self.lost or 0}; "
            f"stuck: {len(self.stuck)}",
        ]
        for line in lines:
            console.print(line)
        for exit_ in self.unexpected_exits:
            console.print(f"  unexpected exit: {exit_}")
        if self.violations:
            console.print(f"[bold red]{len(self.violations)} violation(s):[/bold red]")
            for v in self.violations:
                console.print(f"  {v.guarantee}: {v.detail}")
        else:
            console.print("[bold green]no violations: G1–G5, R1–R3 and P1 held[/bold green]")
        console.print(
            f"logs: {self.workdir}"
            + (f"; database kept: {self.database_url}" if self.database_url else "")
        )

    def _render_issues(self, console: Console) -> None:
        table = Table(title="issues")
        for col in (
            "issue",
            "steer",
            "bot comments",
            "PRs",
            "labels",
            "phases",
            "rounds",
            "lifecycle s",
        ):
            table.add_column(col)
        unusual = [i for i in self.issues if i.lifecycle_s is None or len(i.pull_requests) != 1]
        shown = self.issues[:ISSUE_ROWS_SHOWN] + [
            i for i in unusual if i not in self.issues[:ISSUE_ROWS_SHOWN]
        ]
        for i in shown:
            table.add_row(
                str(i.issue),
                ", ".join(i.steer) or "-",
                str(i.bot_comments),
                ", ".join(f"#{n}" for n in i.pull_requests),
                ", ".join(i.labels),
                ", ".join(f"{k}: {v}" for k, v in i.phases.items()),
                ", ".join(i.rounds) or "-",
                "-" if i.lifecycle_s is None else f"{i.lifecycle_s:.1f}",
            )
        if len(shown) < len(self.issues):
            table.caption = f"{len(self.issues) - len(shown)} more issues, all finished normally"
        console.print(table)
