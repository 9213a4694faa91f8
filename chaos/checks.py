"""The verdict of a chaos run: G1–G5 checked from the database and from the emulated GitHub.

Nothing here trusts the system's own bookkeeping alone: comments are counted
on GitHub by their hidden markers, pull requests by head branch, and the
ledger is cross-checked against what GitHub shows (a `done` comment effect
must name exactly the one comment carrying its marker).

Rounds after the pull request (review and CI repair) have their own checks, named
R1–R3: one round per trigger (review id, command comment id, head SHA) and one
fresh agent run per round; one bot reply per review thread per round, in the thread
it answers, each the one its ledger row names; at most the configured number of
rounds per task and phase.
"""

from __future__ import annotations

import dataclasses
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import func, select

from agent_workflow.core.effects import is_hint
from agent_workflow.store import Store
from agent_workflow.store.schema import (
    agent_runs,
    deliveries,
    effects,
    phase_runs,
    rounds,
    tasks,
)
from chaos.injector import KillRecord, StopRecord
from chaos.world import BOT, MARKER_RE, REPO

EXPECTED_LABELS: Final = frozenset({"agent", "agent-planned", "agent-delivered", "agent-done"})
"""A finished issue's labels: the trigger plus one per completed phase (`agent-blocked` cleared)."""

COMPLETIONS: Final = ("complete", "blocked")
"""`agent_runs.outcome` values that record a finished attempt (errors record `pending`)."""

LABEL_BLOCKED: Final = "agent-blocked"
ROUND_STOPS: Final = ("round-limit", "repeat-failure")
"""Effect key endings of the one comment that says a round limit or loop breaker stopped
the rounds: the issue then keeps `agent-blocked` (a round's attempts are not retries)."""

_PROGRESS_KEY = re.compile(r"#(?P<issue>\d+)/(?P<phase>\w+)/(?P<attempt>\d+)/progress$")
_MARKER = re.compile(MARKER_RE)


@dataclass(frozen=True)
class RoundLimits:
    """`AW_MAX_REVISE_ROUNDS` / `AW_MAX_REPAIR_ROUNDS` of the run (R3)."""

    revise: int = 5
    repair: int = 3

    def of(self, phase: str) -> int:
        """The limit of a round phase."""
        return self.revise if phase == "revise" else self.repair


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
    bot_replies: tuple[tuple[int, int | None, str], ...] = ()
    """A PR's review comments by the bot: (id, in_reply_to_id, body)."""

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


def forge_issues(
    state: dict[str, Any], review_comments: dict[int, list[dict[str, Any]]] | None = None
) -> dict[int, ForgeIssue]:
    """Every issue and PR of the chaos repository, from `EmulatorAdmin.state()`, with each
    PR's bot review comments from `review_comments` (PR number → the admin API's list)."""
    repo = next((r for r in state["repos"] if r["full_name"] == REPO), None)
    if repo is None:
        return {}
    found = {int(i["number"]): ForgeIssue.from_view(i) for i in repo["issues"]}
    for number, comments in (review_comments or {}).items():
        if number in found:
            replies = tuple(
                (int(c["id"]), c.get("in_reply_to_id"), str(c["body"]))
                for c in comments
                if c["author"] == BOT
            )
            found[number] = dataclasses.replace(found[number], bot_replies=replies)
    return found


@dataclass
class DbView:
    """The rows the checks read, fetched once."""

    tasks: list[Any]
    runs: list[Any]
    agent_runs: list[Any]
    effects: list[Any]
    unrouted: list[Any]
    deliveries: int
    rounds: list[Any] = field(default_factory=list)

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
            round_rows = (await conn.execute(select(rounds).order_by(rounds.c.id))).all()
        return cls(
            list(task_rows),
            list(run_rows),
            list(agent_rows),
            list(effect_rows),
            list(unrouted),
            int(total),
            list(round_rows),
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
    limits: RoundLimits | None = None,
) -> Verdict:
    """Check G1–G5, and R1–R3 for the rounds, over the final state of a run."""
    verdict = Verdict()
    driven = sorted(driven)
    _g1(verdict, driven, db)
    _g2(verdict, db)
    _g3(verdict, db, forge)
    _g4(verdict, driven, db, forge)
    _g5(verdict, db, stops)
    _r1_one_round_per_trigger(verdict, db)
    _r2_one_reply_per_thread_per_round(verdict, db, forge)
    _r3_bounded_rounds(verdict, db, limits or RoundLimits())
    _one_progress_comment_per_attempt(verdict, db, forge)
    verdict.stats.update(_agent_stats(db))
    verdict.stats.update(_round_stats(db, forge))
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
        expected = set(EXPECTED_LABELS)
        if _rounds_stopped(db, issue):
            expected.add(LABEL_BLOCKED)
        if labels != expected:
            verdict.add("G4", f"#{issue} ends with labels {sorted(labels)}")


def _rounds_stopped(db: DbView, issue: int) -> bool:
    """True when the rounds of the issue were stopped (limit, loop breaker) or one ended
    blocked: then it keeps `agent-blocked` after the merge."""
    prefix = f"{REPO}#{issue}/"
    for row in db.effects:
        phase, _, rest = row.key.removeprefix(prefix).partition("/")
        if row.key.startswith(prefix) and phase in ("revise", "repair"):
            name = rest.partition("/")[2].removesuffix("-label")
            if name in ROUND_STOPS or name == "blocked":
                return True
    return False


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


def _round_runs(db: DbView) -> dict[tuple[int, str], Any]:
    """The phase run of each (task, round phase)."""
    return {(r.task_id, r.phase): r for r in db.runs if r.phase in ("revise", "repair")}


def _r1_one_round_per_trigger(verdict: Verdict, db: DbView) -> None:
    """R1: one round per trigger (review id, command comment id, head SHA) and per phase
    attempt; each round ran its agent fresh exactly once (resumes reuse the session)."""
    triggers = Counter((r.task_id, r.phase, r.trigger_key) for r in db.rounds)
    for (task_id, phase, key), n in triggers.items():
        if n > 1:
            verdict.duplicates_found += n - 1
            verdict.add("R1", f"task {task_id}: {n} {phase} rounds for trigger {key}")
    attempts = Counter((r.task_id, r.phase, r.attempt) for r in db.rounds)
    for (task_id, phase, attempt), n in attempts.items():
        if n > 1:
            verdict.add("R1", f"task {task_id}: {n} {phase} rounds share attempt {attempt}")
    runs = _round_runs(db)
    for r in db.rounds:
        run = runs.get((r.task_id, r.phase))
        if run is None:
            verdict.add("R1", f"task {r.task_id}: {r.phase} round {r.number} has no phase run")
            continue
        fresh = [
            a
            for a in db.agent_runs
            if a.phase_run_id == run.id and a.attempt == r.attempt and a.mode == "fresh"
        ]
        if len(fresh) != 1:
            verdict.add(
                "R1",
                f"task {r.task_id}: {r.phase} round {r.number} ({r.trigger_key}, attempt "
                f"{r.attempt}) had {len(fresh)} fresh agent runs",
            )


def _round_threads(work: dict[str, Any]) -> list[int]:
    """The review threads a revise round answers (as the revise hook chooses them)."""
    ids = [int(c["id"]) for c in work.get("comments", ()) if c.get("in_reply_to_id") is None]
    trigger = work.get("trigger", {})
    if not ids and trigger.get("comment_id") is not None and trigger.get("review_id") is not None:
        ids.append(int(trigger["comment_id"]))
    return ids


def _r2_one_reply_per_thread_per_round(
    verdict: Verdict, db: DbView, forge: dict[int, ForgeIssue]
) -> None:
    """R2: each review thread of a completed revise round has exactly one bot reply from
    that round (by its marker), in that thread; no round replies twice; every bot reply
    belongs to a round's thread; a `done` reply effect names the one reply with its marker."""
    issue_of = {t.id: t.issue_number for t in db.tasks}
    pr_of = {t.id: t.pr_number for t in db.tasks}
    runs = _round_runs(db)
    replies = _replies_by_key(verdict, forge)
    expected: set[str] = set()
    for r in db.rounds:
        if r.phase != "revise":
            continue
        run = runs.get((r.task_id, r.phase))
        completed = run is not None and any(
            a.phase_run_id == run.id and a.attempt == r.attempt and a.outcome == "complete"
            for a in db.agent_runs
        )
        prefix = f"{REPO}#{issue_of.get(r.task_id)}/revise/{r.attempt}/reply-"
        for thread in _round_threads(r.work):
            key = f"{prefix}{thread}"
            expected.add(key)
            found = replies.get(key, [])
            wrong = [rid for rid, t in found if t != thread]
            if wrong:
                verdict.add("R2", f"reply {key} posted outside its thread: {wrong}")
            if len(found) > 1 or (completed and not found):
                verdict.duplicates_found += max(len(found) - 1, 0)
                verdict.add(
                    "R2",
                    f"PR #{pr_of.get(r.task_id)}: revise round {r.number} has {len(found)} "
                    f"replies in the thread of review comment {thread}",
                )
    for key in replies.keys() - expected:
        verdict.add("R2", f"bot reply {key} answers no thread of any round")
    for row in db.effects:
        if row.kind == "reply" and row.status == "done":
            ids = {str(rid) for rid, _ in replies.get(row.key, [])}
            if row.external_id not in ids:
                verdict.add(
                    "R2", f"reply effect {row.key} recorded {row.external_id}, GitHub has {ids}"
                )


def _replies_by_key(
    verdict: Verdict, forge: dict[int, ForgeIssue]
) -> dict[str, list[tuple[int, int | None]]]:
    """The bot's review-thread replies by effect key: [(reply id, thread it is in)]."""
    replies: dict[str, list[tuple[int, int | None]]] = defaultdict(list)
    for issue in forge.values():
        for reply_id, thread, body in issue.bot_replies:
            found = _MARKER.search(body)
            if found is None:
                verdict.add("R2", f"PR #{issue.number}: bot reply {reply_id} has no effect marker")
                continue
            replies[found.group(1)].append((reply_id, thread))
    return replies


def _r3_bounded_rounds(verdict: Verdict, db: DbView, limits: RoundLimits) -> None:
    """R3: at most the limit of rounds per task and phase, numbered 1..n."""
    per_task: dict[tuple[int, str], list[int]] = defaultdict(list)
    for r in db.rounds:
        per_task[(r.task_id, r.phase)].append(r.number)
    for (task_id, phase), numbers in per_task.items():
        if len(numbers) > limits.of(phase):
            verdict.add(
                "R3",
                f"task {task_id}: {len(numbers)} {phase} rounds, limit {limits.of(phase)}",
            )
        if sorted(numbers) != list(range(1, len(numbers) + 1)):
            verdict.add("R3", f"task {task_id}: {phase} rounds numbered {sorted(numbers)}")


def _one_progress_comment_per_attempt(
    verdict: Verdict, db: DbView, forge: dict[int, ForgeIssue]
) -> None:
    """Live progress: at most one progress comment per phase attempt (edited in place,
    never re-posted), and only for an attempt whose agent ran."""
    issue_of = {t.id: t.issue_number for t in db.tasks}
    run_of = {r.id: (issue_of.get(r.task_id), r.phase) for r in db.runs}
    ran = {(*run_of.get(a.phase_run_id, (None, None)), a.attempt) for a in db.agent_runs}
    found: Counter[tuple[int, str, int]] = Counter()
    for place in forge.values():
        for _, body in place.bot_comments:
            marker = _MARKER.search(body)
            key = _PROGRESS_KEY.search(marker.group(1)) if marker else None
            if key is not None:
                found[(int(key["issue"]), key["phase"], int(key["attempt"]))] += 1
    for (number, phase, tried), n in found.items():
        if n > 1:
            verdict.add("P1", f"#{number} {phase} attempt {tried}: {n} progress comments")
        if (number, phase, tried) not in ran:
            verdict.add("P1", f"#{number} {phase} attempt {tried}: progress but no agent run")
    verdict.stats["progress_comments"] = sum(found.values())


def _round_stats(db: DbView, forge: dict[int, ForgeIssue]) -> dict[str, Any]:
    phases = Counter(r.phase for r in db.rounds)
    return {
        "revise_rounds": phases["revise"],
        "repair_rounds": phases["repair"],
        "review_replies": sum(len(i.bot_replies) for i in forge.values()),
        "rounds_stopped": sorted(
            row.key for row in db.effects if row.key.endswith(tuple(f"/{n}" for n in ROUND_STOPS))
        ),
    }


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
                f"replies {len(old.bot_replies)}→{len(new.bot_replies)}, "
                f"labels {sorted(old.labels)}→{sorted(new.labels)}"
            )
    return changes
