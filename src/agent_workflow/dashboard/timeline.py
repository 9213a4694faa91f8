"""A task's timeline: everything stored about it, as one list ordered by time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent_workflow.core.errors import BadEvent
from agent_workflow.dashboard import views
from agent_workflow.store.dashboard import TaskHistory
from agent_workflow.store.deliveries import event_from_json

ERROR_CHARS = 300  # an error or reason shown in a line; the rest is in the logs


@dataclass(frozen=True)
class Entry:
    """One line of a task's timeline."""

    at: float
    kind: str  # delivery, phase, round, agent, effect
    what: str
    detail: str = ""
    state: str = ""
    link: str | None = None


def timeline(h: TaskHistory, links: views.Links, now: float) -> list[Entry]:
    """Deliveries, phase runs, rounds, agent runs and effects of a task, oldest first."""
    t = h.task
    out = [_delivery(d) for d in h.deliveries]
    for p in h.phases:
        out.extend(_phase(p, now))
    out.extend(_round(r) for r in h.rounds)
    out.extend(_agent_run(a) for a in h.agent_runs)
    out.extend(_effect(e, t, links) for e in h.effects)
    out.sort(key=lambda e: e.at)
    return out


def _delivery(d: dict[str, Any]) -> Entry:
    actor = intent = ""
    if d["parsed"] is not None:
        try:
            event = event_from_json(d["parsed"])
        except BadEvent:
            intent = "unreadable event"
        else:
            actor, intent = event.actor, event.intent.value
    if d["dead_at"] is not None:
        state = "dead-lettered"
    elif d["routed_at"] is not None:
        state = "routed"
    else:
        state = "waiting"
    label = f"{d['event']}.{d['action']}" if d["action"] else d["event"]
    detail = f"{intent} by {actor}" if actor else intent
    if d["last_error"]:
        detail = f"{detail} — last error: {d['last_error'][:ERROR_CHARS]}"
    return Entry(d["received_at"], "delivery", label, detail, state)


def _phase(p: dict[str, Any], now: float) -> list[Entry]:
    word = views.phase_state(p["status"], p["lease_until"], now)
    at = p["finished_at"] if p["finished_at"] is not None else p["updated_at"]
    reason = (p["blocked_reason"] or "")[:ERROR_CHARS]
    return [
        Entry(p["created_at"], "phase", f"{p['phase']} opened"),
        Entry(at, "phase", f"{p['phase']} attempt {p['attempt']}", reason, word.value),
    ]


def _round(r: dict[str, Any]) -> Entry:
    pushed = f"pushed {r['pushed_sha'][:10]}" if r["pushed_sha"] else ""
    what = f"{r['phase']} round {r['number']} (attempt {r['attempt']})"
    return Entry(r["created_at"], "round", what, r["trigger_key"], pushed)


def _agent_run(a: dict[str, Any]) -> Entry:
    mode = "resumed" if a["mode"] == "resume" else "fresh"
    detail = (
        f"{a['turns']} turns, ${a['cost_usd']:.4f}, {views.duration(a['duration_s'])}, "
        f"session {a['session_id']}"
    )
    if a["terminal_reason"]:
        detail = f"{detail} — {a['terminal_reason'][:ERROR_CHARS]}"
    what = f"{a['phase']} attempt {a['attempt']}: {mode} run by {a['owner']}"
    return Entry(a["started_at"], "agent", what, detail, a["outcome"] or "running")


def _effect(e: dict[str, Any], t: dict[str, Any], links: views.Links) -> Entry:
    link = (  # only what GitHub has: a started effect may not have happened yet
        links.effect(
            t["repo"], t["issue_number"], t["pr_number"], e["phase"], e["kind"], e["external_id"]
        )
        if e["status"] == "done"
        else None
    )
    at = e["done_at"] if e["done_at"] is not None else e["created_at"]
    what = f"{e['kind']} ({e['phase']} attempt {e['attempt']})"
    return Entry(at, "effect", what, e["key"], e["status"], link)
