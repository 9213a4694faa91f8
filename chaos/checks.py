"""The verdict of a chaos run: G1–G5 checked from the database and from the emulated GitHub.

Nothing here trusts the system's own bookkeeping alone: comments are counted
on GitHub by their hidden markers, pull requests by head branch, and the
ledger is cross-checked against what GitHub shows (a `done` comment effect
must name exactly the one comment carrying its marker).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import func, select

from agent_workflow.core.effects import is_hint
from agent_workflow.store import Store
from agent_workflow.store.schema import agent_runs, deliveries, effects, phase_runs, tasks
from chaos.injector import KillRecord, StopRecord
from chaos.world import BOT, MARKER_RE, REPO

EXPECTED_LABELS: Final = frozenset({"agent", "agent-planned", "agent-delivered", "agent-done"})
"""A finished issue's labels: the trigger plus one per completed phase (`agent-blocked` cleared)."""

COMPLETIONS: Final = ("complete", "blocked")
"""`agent_runs.outcome` values that record a finished attempt (errors record `pending`)."""

_MARKER = re.compile(MARKER_RE)


@dataclass(frozen=True)
class Violation:
    """One broken guarantee, with what shows it."""

    guarantee: str
    detail: str


@dataclass(frozen=True)
class ForgeIssue:
    """An issue or PR as the emulator holds it, reduced to what the checks need."""

    number: int
    labels: tuple[str, ...]
    bot_comments: tuple[tuple[int, str], ...]
    head: str | None

    @classmethod
    def from_view(cls, view: dict[str, Any]) -> ForgeIssue:
        """From the admin API's issue view."""
        pull = view.get("pull")
        return cls(
            number=int(view["number"]),
            labels=tuple(view["labels"]),
            bot_comments=tuple(
                (int(c["id"]), str(c["body"])) for c in view["comments"] if c["author"] == BOT
            ),
            head=None if pull is None else str(pull["head"]),
        )


def forge_issues(state: dict[str, Any]) -> dict[int, ForgeIssue]:
    """Every issue and PR of the chaos repository, from `EmulatorAdmin.state()`."""
    repo = next((r for r in state["repos"] if r["full_name"] == REPO), None)
    if repo is None:
        return {}
    return {int(i["number"]): ForgeIssue.from_view(i) for i in repo["issues"]}


@dataclass
class DbView:
    """The rows the checks read, fetched once."""

    tasks: list[Any]
    runs: list[Any]
    agent_runs: list[Any]
    effects: list[Any]
    unrouted: list[Any]
    deliveries: int

    @classmethod
    async def load(cls, store: Store) -> DbView:
        """Read every table the checks need."""
        async with store.engine.connect() as conn:
            task_rows = (await conn.execute(select(tasks))).all()
            run_rows = (await conn.execute(select(phase_runs))).all()
            agent_rows = (await conn.execute(select(agent_runs).order_by(agent_runs.c.id))).all()
            effect_rows = (await conn.execute(select(effects))).all()
            unrouted = (
                await conn.execute(select(deliveries).where(deliveries.c.routed_at.is_(None)))
            ).all()
            total = (await conn.execute(select(func.count()).select_from(deliveries))).scalar_one()
        return cls(
            list(task_rows),
            list(run_rows),
            list(agent_rows),
            list(effect_rows),
            list(unrouted),
            int(total),
        )


@dataclass
class Verdict:
    """Violations found, plus the figures the report prints."""

    violations: list[Violation] = field(default_factory=list)
    duplicates_found: int = 0
    lost: list[int] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    def add(self, guarantee: str, detail: str) -> None:
        """Record one violation."""
        self.violations.append(Violation(guarantee, detail))


def judge(
    driven: Iterable[int],
    db: DbView,
    forge: dict[int, ForgeIssue],
    kills: list[KillRecord],
    stops: list[StopRecord],
) -> Verdict:
    """Check G1–G5 over the final state of a run."""
    verdict = Verdict()
    driven = sorted(driven)
    _g1(verdict, driven, db)
    _g2(verdict, db)
    _g3(verdict, db, forge)
    _g4(verdict, driven, db, forge)
    _g5(verdict, db, stops)
    verdict.stats.update(_agent_stats(db))
    verdict.stats["recovery_s"] = recovery_times(db, kills)
    return verdict


def _g1(verdict: Verdict, driven: list[int], db: DbView) -> None:
    """One task per issue: never two, and never none for an issue that was labelled."""
    per_issue = Counter(t.issue_number for t in db.tasks if t.repo == REPO)
    for issue, n in per_issue.items():
        if n > 1:
            verdict.add("G1", f"#{issue} has {n} task rows")
    for issue in driven:
        if per_issue[issue] == 0:
            verdict.lost.append(issue)
            verdict.add("G1", f"#{issue} was labelled but has no task (lost)")


def _g2(verdict: Verdict, db: DbView) -> None:
    """At most one fresh agent start per (phase run, attempt); resumes reuse its session."""
    groups: dict[tuple[int, int], list[Any]] = defaultdict(list)
    for row in db.agent_runs:
        groups[(row.phase_run_id, row.attempt)].append(row)
    for (run_id, attempt), rows in groups.items():
        fresh = [r for r in rows if r.mode == "fresh"]
        if len(fresh) != 1:
            verdict.add(
                "G2", f"phase run {run_id} attempt {attempt}: {len(fresh)} fresh agent starts"
            )
        sessions = {r.session_id for r in rows}
        if len(sessions) > 1:
            verdict.add(
                "G2", f"phase run {run_id} attempt {attempt}: {len(sessions)} agent sessions"
            )


def _g3(verdict: Verdict, db: DbView, forge: dict[int, ForgeIssue]) -> None:
    """Each effect once on GitHub: markers unique, one PR per head, ledger matches GitHub."""
    where: dict[str, list[tuple[int, int]]] = defaultdict(list)  # key -> [(issue, comment id)]
    for issue in forge.values():
        for comment_id, body in issue.bot_comments:
            found = _MARKER.search(body)
            if found is None:
                verdict.add("G3", f"#{issue.number}: bot comment {comment_id} has no effect marker")
                continue
            where[found.group(1)].append((issue.number, comment_id))
    for key, places in where.items():
        if len(places) > 1:
            verdict.duplicates_found += len(places) - 1
            verdict.add("G3", f"effect {key} appears on {len(places)} comments: {places}")
    heads = Counter(i.head for i in forge.values() if i.head is not None)
    for head, n in heads.items():
        if n > 1:
            verdict.duplicates_found += n - 1
            verdict.add("G3", f"{n} pull requests from head {head}")
    _ledger_matches_forge(verdict, db, where)


def _ledger_matches_forge(
    verdict: Verdict, db: DbView, where: dict[str, list[tuple[int, int]]]
) -> None:
    """Every effect `done` (hints are at most once); a done comment names its one comment."""
    for row in db.effects:
        if row.status != "done":
            if not is_hint(row.key):
                verdict.add("G3", f"effect {row.key} left {row.status}")
        elif row.kind == "comment":
            places = where.get(row.key, [])
            ids = {str(cid) for _, cid in places}
            if not places:
                verdict.add("G3", f"effect {row.key} is done but no comment carries its marker")
            elif row.external_id not in ids:
                verdict.add(
                    "G3", f"effect {row.key} recorded comment {row.external_id}, GitHub has {ids}"
                )
    ledger_keys = {row.key for row in db.effects if row.kind == "comment"}
    for key in where.keys() - ledger_keys:
        verdict.add(
            "G3", f"comment with marker {key} has no effect row (posted outside the ledger)"
        )


def _g4(verdict: Verdict, driven: list[int], db: DbView, forge: dict[int, ForgeIssue]) -> None:
    """Nothing lost: every delivery routed, every phase final with its effects, every issue done."""
    for row in db.unrouted:
        verdict.add(
            "G4",
            f"delivery {row.delivery_id} ({row.event}.{row.action}) never routed"
            f" (attempts {row.route_attempts}, last error {row.last_error!r})",
        )
    task_of = {t.id: t for t in db.tasks}
    runs_by_issue: dict[int, dict[str, Any]] = defaultdict(dict)
    for run in db.runs:
        task = task_of[run.task_id]
        runs_by_issue[task.issue_number][run.phase] = run
        if run.status not in ("complete", "blocked", "failed") or not run.effects_done:
            what = (
                f"#{task.issue_number} {run.phase}: {run.status}, effects_done={run.effects_done}"
            )
            verdict.stuck.append(what)
            verdict.add("G4", f"phase stuck: {what} (lease {run.lease_owner})")
    for issue in driven:
        compound = runs_by_issue[issue].get("compound")
        if compound is None or compound.status != "complete":
            phases = {p: r.status for p, r in runs_by_issue[issue].items()}
            verdict.add("G4", f"#{issue} did not finish its lifecycle: {phases or 'no phases'}")
            continue
        labels = set(forge[issue].labels) if issue in forge else set()
        if labels != EXPECTED_LABELS:
            verdict.add("G4", f"#{issue} ends with labels {sorted(labels)}")


def _g5(verdict: Verdict, db: DbView, stops: list[StopRecord]) -> None:
    """No completion under a stale fence; a woken zombie completed nothing that was taken over."""
    completions = Counter(
        (r.phase_run_id, r.attempt) for r in db.agent_runs if r.outcome in COMPLETIONS
    )
    for (run_id, attempt), n in completions.items():
        if n > 1:
            verdict.add("G5", f"phase run {run_id} attempt {attempt} completed {n} times")
    for stop in stops:
        for held in stop.taken_over:
            if not held.agent_open:
                continue  # frozen while performing effects: the ledger (G3) covers those
            for row in db.agent_runs:
                if (
                    row.phase_run_id == held.run_id
                    and row.fence == held.fence
                    and row.owner == stop.owner
                    and row.outcome is not None
                ):
                    verdict.add(
                        "G5",
                        f"zombie {stop.owner} recorded '{row.outcome}' on phase run {held.run_id} "
                        f"under fence {held.fence} after it was taken over",
                    )


def _agent_stats(db: DbView) -> dict[str, Any]:
    modes = Counter(r.mode for r in db.agent_runs)
    return {
        "agent_runs_fresh": modes["fresh"],
        "agent_runs_resume": modes["resume"],
        "agent_runs_restarted": sum(1 for r in db.agent_runs if r.restarted),
        "deliveries_stored": db.deliveries,
        "effects": len(db.effects),
        "max_fence": max((r.fence for r in db.runs), default=0),
    }


def recovery_times(db: DbView, kills: list[KillRecord]) -> dict[str, float | int]:
    """Seconds from a kill mid-agent to the next agent start of that phase run (a resume)."""
    gaps: list[float] = []
    for kill in kills:
        for held in kill.held:
            if held.status != "active":
                continue
            later = [
                r.started_at
                for r in db.agent_runs
                if r.phase_run_id == held.run_id and r.started_at > kill.at
            ]
            if later:
                gaps.append(min(later) - kill.at)
    if not gaps:
        return {"count": 0}
    return {
        "count": len(gaps),
        "p50": round(statistics.median(gaps), 2),
        "max": round(max(gaps), 2),
    }


def forge_changes(before: dict[int, ForgeIssue], after: dict[int, ForgeIssue]) -> list[str]:
    """What changed on GitHub between two snapshots (the quiet period must change nothing)."""
    changes: list[str] = []
    for number in sorted(after.keys() | before.keys()):
        old, new = before.get(number), after.get(number)
        if old is None or new is None:
            changes.append(f"#{number} appeared or vanished")
        elif old != new:
            changes.append(
                f"#{number}: comments {len(old.bot_comments)}→{len(new.bot_comments)}, "
                f"labels {sorted(old.labels)}→{sorted(new.labels)}"
            )
    return changes
