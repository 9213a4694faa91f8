"""The chaos verdict itself: each guarantee's check fires on a state that breaks it.

A checker that never fails proves nothing, so each test builds the final state
a specific bug would leave (synthetic rows, no processes) and expects exactly
that violation; the first test shows a clean state passes.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

from chaos.checks import DbView, ForgeIssue, RoundLimits, forge_changes, judge
from chaos.injector import Held, KillRecord, StopRecord
from chaos.world import REPO

PHASES = ("plan", "deliver", "compound")
LABELS = ("agent", "agent-planned", "agent-delivered", "agent-done")


def marker(key: str) -> str:
    return f"done\n\n<!-- agent-workflow:effect={key} sig={'0' * 64} -->"


def clean_world(issue: int = 1) -> tuple[DbView, dict[int, ForgeIssue]]:
    """One issue through its whole lifecycle, every effect once."""
    task = SimpleNamespace(id=10, repo=REPO, issue_number=issue, pr_number=2)
    runs = [
        SimpleNamespace(
            id=100 + n,
            task_id=10,
            phase=p,
            status="complete",
            attempt=1,
            fence=1,
            effects_done=True,
            lease_owner=None,
        )
        for n, p in enumerate(PHASES)
    ]
    agents = [
        SimpleNamespace(
            phase_run_id=100 + n,
            attempt=1,
            fence=1,
            mode="fresh",
            session_id=f"s{n}",
            outcome="complete",
            owner="w1",
            started_at=1000.0 + n,
            restarted=False,
        )
        for n in range(3)
    ]
    keys = [f"{REPO}#{issue}/{p}/1/comment" for p in PHASES]
    effects = [
        SimpleNamespace(key=k, kind="comment", status="done", external_id=str(500 + n))
        for n, k in enumerate(keys)
    ]
    db = DbView([task], runs, agents, effects, [], 5)
    forge = {
        issue: ForgeIssue(
            issue, LABELS, tuple((500 + n, marker(k)) for n, k in enumerate(keys)), None
        ),
        2: ForgeIssue(2, (), (), "agent/issue-1"),
    }
    return db, forge


def guarantees(db: DbView, forge: dict[int, ForgeIssue], **kw: Any) -> list[str]:
    verdict = judge([1], db, forge, kw.get("kills", []), kw.get("stops", []))
    return [v.guarantee for v in verdict.violations]


def test_judge__clean_run_has_no_violations() -> None:
    db, forge = clean_world()
    assert guarantees(db, forge) == []


def test_judge__two_tasks_for_one_issue_break_g1() -> None:
    db, forge = clean_world()
    db.tasks.append(SimpleNamespace(id=11, repo=REPO, issue_number=1, pr_number=None))
    assert "G1" in guarantees(db, forge)


def test_judge__a_labelled_issue_without_task_is_lost() -> None:
    db, forge = clean_world()
    verdict = judge([1, 7], db, forge, [], [])
    assert verdict.lost == [7]


def test_judge__second_fresh_agent_start_breaks_g2() -> None:
    db, forge = clean_world()
    db.agent_runs.append(
        SimpleNamespace(
            phase_run_id=100,
            attempt=1,
            fence=2,
            mode="fresh",
            session_id="s0",
            outcome=None,
            owner="w2",
            started_at=1005.0,
            restarted=False,
        )
    )
    assert guarantees(db, forge) == ["G2"]


def test_judge__duplicate_comment_breaks_g3() -> None:
    db, forge = clean_world()
    issue = forge[1]
    forge[1] = ForgeIssue(
        1, issue.labels, (*issue.bot_comments, (999, issue.bot_comments[0][1])), None
    )
    verdict = judge([1], db, forge, [], [])
    assert [v.guarantee for v in verdict.violations] == ["G3"]
    assert verdict.duplicates_found == 1


def test_judge__second_pull_request_for_a_head_breaks_g3() -> None:
    db, forge = clean_world()
    forge[3] = ForgeIssue(3, (), (), "agent/issue-1")
    assert guarantees(db, forge) == ["G3"]


def test_judge__effect_left_started_breaks_g3() -> None:
    db, forge = clean_world()
    db.effects.append(
        SimpleNamespace(key="k", kind="add_labels", status="started", external_id=None)
    )
    assert guarantees(db, forge) == ["G3"]


def test_judge__unmarked_bot_comment_breaks_g3() -> None:
    db, forge = clean_world()
    issue = forge[1]
    forge[1] = ForgeIssue(1, issue.labels, (*issue.bot_comments, (998, "no marker")), None)
    assert guarantees(db, forge) == ["G3"]


def test_judge__unrouted_delivery_and_stuck_phase_break_g4() -> None:
    db, forge = clean_world()
    db.unrouted.append(
        SimpleNamespace(
            delivery_id="d1", event="issues", action="labeled", route_attempts=3, last_error="x"
        )
    )
    db.runs[2] = SimpleNamespace(**{**vars(db.runs[2]), "status": "active", "effects_done": False})
    verdict = judge([1], db, forge, [], [])
    assert {v.guarantee for v in verdict.violations} == {"G4"}
    assert verdict.stuck


def test_judge__second_completion_of_an_attempt_breaks_g5() -> None:
    db, forge = clean_world()
    db.agent_runs.append(
        SimpleNamespace(
            phase_run_id=100,
            attempt=1,
            fence=2,
            mode="resume",
            session_id="s0",
            outcome="complete",
            owner="w2",
            started_at=1005.0,
            restarted=False,
        )
    )
    assert guarantees(db, forge) == ["G5"]


def test_judge__zombie_completing_a_taken_over_run_breaks_g5() -> None:
    db, forge = clean_world()
    # w1 held plan (fence 1) when frozen; w2 took it over (fence 2) and its resume finished;
    # w1's record under fence 1 carries an outcome, so the zombie wrote after waking.
    db.agent_runs.append(
        SimpleNamespace(
            phase_run_id=100,
            attempt=1,
            fence=2,
            mode="resume",
            session_id="s0",
            outcome=None,
            owner="w2",
            started_at=1005.0,
            restarted=False,
        )
    )
    held = Held(100, 1, "active", agent_open=True)
    stop = StopRecord("w1", 1000.5, 1010.0, [held], [held])
    assert guarantees(db, forge, stops=[stop]) == ["G5"]


def test_judge__zombie_frozen_during_effects_is_left_to_g3() -> None:
    """Its outcome was recorded before it froze: taking the effects over is no violation."""
    db, forge = clean_world()
    held = Held(100, 1, "complete", agent_open=False)
    stop = StopRecord("w1", 1000.5, 1010.0, [held], [held])
    assert guarantees(db, forge, stops=[stop]) == []


def test_judge__recovery_time_is_kill_to_next_agent_start() -> None:
    db, forge = clean_world()
    db.agent_runs.append(
        SimpleNamespace(
            phase_run_id=101,
            attempt=1,
            fence=2,
            mode="resume",
            session_id="s1",
            outcome=None,
            owner="w2",
            started_at=1004.5,
            restarted=True,
        )
    )
    kill = KillRecord("w1", 1001.5, [Held(101, 1, "active")])
    verdict = judge([1], db, forge, [kill], [])
    assert verdict.stats["recovery_s"] == {"count": 1, "p50": 3.0, "max": 3.0}


def test_forge_changes__reports_a_comment_added_in_the_quiet_period() -> None:
    _, before = clean_world()
    after = dict(before)
    issue = before[1]
    after[1] = ForgeIssue(1, issue.labels, (*issue.bot_comments, (997, marker("late"))), None)
    assert forge_changes(before, before) == []
    assert len(forge_changes(before, after)) == 1


# -- rounds after the pull request (R1–R3) ------------------------------------------------

REVIEW_THREADS = (5001, 5002)


def round_world(**round_fields: Any) -> tuple[DbView, dict[int, ForgeIssue]]:
    """The clean world plus one completed revise round (review 4001, two threads) with one
    bot reply in each thread on PR #2, and its phase run and fresh agent run."""
    db, forge = clean_world()
    db.runs.append(
        SimpleNamespace(
            id=200,
            task_id=10,
            phase="revise",
            status="complete",
            attempt=1,
            fence=1,
            effects_done=True,
            lease_owner=None,
        )
    )
    db.agent_runs.append(
        SimpleNamespace(
            phase_run_id=200,
            attempt=1,
            fence=1,
            mode="fresh",
            session_id="s-revise",
            outcome="complete",
            owner="w1",
            started_at=1010.0,
            restarted=False,
        )
    )
    work = {
        "trigger": {"key": "review:4001", "review_id": 4001},
        "comments": [{"id": t, "in_reply_to_id": None} for t in REVIEW_THREADS],
    }
    db.rounds.append(
        SimpleNamespace(
            **{
                "id": 1,
                "task_id": 10,
                "phase": "revise",
                "trigger_key": "review:4001",
                "attempt": 1,
                "number": 1,
                "work": work,
                **round_fields,
            }
        )
    )
    replies = []
    for n, thread in enumerate(REVIEW_THREADS):
        key = f"{REPO}#1/revise/1/reply-{thread}"
        db.effects.append(
            SimpleNamespace(key=key, kind="reply", status="done", external_id=str(6000 + n))
        )
        replies.append((6000 + n, thread, marker(key)))
    forge[2] = dataclasses.replace(forge[2], bot_replies=tuple(replies))
    return db, forge


def test_judge__clean_round_has_no_violations() -> None:
    db, forge = round_world()
    verdict = judge([1], db, forge, [], [])
    assert verdict.violations == []
    assert verdict.stats["revise_rounds"] == 1
    assert verdict.stats["review_replies"] == 2


def test_judge__two_rounds_for_one_review_break_r1() -> None:
    db, forge = round_world()
    second = SimpleNamespace(**{**vars(db.rounds[0]), "id": 2, "attempt": 2, "number": 2})
    db.rounds.append(second)
    db.agent_runs.append(
        SimpleNamespace(**{**vars(db.agent_runs[-1]), "attempt": 2, "session_id": "s-2"})
    )
    verdict = judge([1], db, forge, [], [])
    assert "R1" in {v.guarantee for v in verdict.violations}
    assert verdict.duplicates_found == 1


def test_judge__two_rounds_for_one_head_sha_break_r1() -> None:
    db, forge = clean_world()
    db.runs.append(SimpleNamespace(**{**vars(db.runs[0]), "id": 300, "phase": "repair"}))
    for attempt in (1, 2):
        db.rounds.append(
            SimpleNamespace(
                id=attempt,
                task_id=10,
                phase="repair",
                trigger_key=f"checks:{'a' * 40}",
                attempt=attempt,
                number=attempt,
                work={"trigger": {"key": f"checks:{'a' * 40}"}},
            )
        )
        db.agent_runs.append(
            SimpleNamespace(**{**vars(db.agent_runs[0]), "phase_run_id": 300, "attempt": attempt})
        )
    assert guarantees(db, forge) == ["R1"]


def test_judge__round_whose_agent_ran_fresh_twice_breaks_r1() -> None:
    db, forge = round_world()
    db.agent_runs.append(
        SimpleNamespace(**{**vars(db.agent_runs[-1]), "fence": 2, "outcome": None, "owner": "w2"})
    )
    # G2 sees the phase run's second fresh start; R1 names the round it belongs to.
    assert sorted(guarantees(db, forge)) == ["G2", "R1"]


def test_judge__second_reply_in_a_thread_breaks_r2() -> None:
    db, forge = round_world()
    first = forge[2].bot_replies[0]
    forge[2] = dataclasses.replace(
        forge[2], bot_replies=(*forge[2].bot_replies, (6999, first[1], first[2]))
    )
    verdict = judge([1], db, forge, [], [])
    assert [v.guarantee for v in verdict.violations] == ["R2"]
    assert verdict.duplicates_found == 1


def test_judge__completed_round_without_a_reply_breaks_r2() -> None:
    db, forge = round_world()
    forge[2] = dataclasses.replace(forge[2], bot_replies=forge[2].bot_replies[:1])
    db.effects = [e for e in db.effects if not e.key.endswith(f"reply-{REVIEW_THREADS[1]}")]
    assert guarantees(db, forge) == ["R2"]


def test_judge__reply_in_the_wrong_thread_breaks_r2() -> None:
    db, forge = round_world()
    replies = list(forge[2].bot_replies)
    reply_id, _, body = replies[0]
    replies[0] = (reply_id, REVIEW_THREADS[1], body)
    forge[2] = dataclasses.replace(forge[2], bot_replies=tuple(replies))
    assert guarantees(db, forge) == ["R2"]


def test_judge__reply_effect_naming_another_reply_breaks_r2() -> None:
    db, forge = round_world()
    db.effects[-1] = SimpleNamespace(**{**vars(db.effects[-1]), "external_id": "7777"})
    assert guarantees(db, forge) == ["R2"]


def test_judge__rounds_past_the_limit_break_r3() -> None:
    db, forge = round_world()
    for n in (2, 3):
        key = f"review:{4000 + n}"
        db.rounds.append(
            SimpleNamespace(
                **{
                    **vars(db.rounds[0]),
                    "id": n,
                    "trigger_key": key,
                    "attempt": n,
                    "number": n,
                    "work": {"trigger": {"key": key}, "comments": []},
                }
            )
        )
        db.agent_runs.append(
            SimpleNamespace(**{**vars(db.agent_runs[-1]), "attempt": n, "session_id": f"s{n}"})
        )
    assert guarantees(db, forge) == []  # the default limit (5) allows three
    verdict = judge([1], db, forge, [], [], RoundLimits(revise=2, repair=3))
    assert [v.guarantee for v in verdict.violations] == ["R3"]


def test_judge__a_stopped_round_explains_agent_blocked_after_the_merge() -> None:
    db, forge = round_world()
    forge[1] = dataclasses.replace(forge[1], labels=(*LABELS, "agent-blocked"))
    assert guarantees(db, forge) == ["G4"]
    db.effects.append(
        SimpleNamespace(
            key=f"{REPO}#1/revise/0/round-limit-label",
            kind="add_labels",
            status="done",
            external_id=None,
        )
    )
    assert guarantees(db, forge) == []


def test_forge_changes__reports_a_reply_added_in_the_quiet_period() -> None:
    _, before = round_world()
    after = dict(before)
    after[2] = dataclasses.replace(
        before[2], bot_replies=(*before[2].bot_replies, (6100, 5001, marker("late")))
    )
    assert len(forge_changes(before, after)) == 1


def _with_progress(db: DbView, forge: dict[int, ForgeIssue], phase: str, attempt: int) -> None:
    """A progress comment for (issue 1, phase, attempt), recorded in the ledger."""
    key = f"{REPO}#1/{phase}/{attempt}/progress"
    comment_id = 800 + len(forge[1].bot_comments)
    db.effects.append(
        SimpleNamespace(key=key, kind="comment", status="done", external_id=str(comment_id))
    )
    forge[1] = dataclasses.replace(
        forge[1], bot_comments=(*forge[1].bot_comments, (comment_id, marker(key)))
    )


def test_judge__one_progress_comment_per_attempt_is_clean() -> None:
    db, forge = clean_world()
    _with_progress(db, forge, "plan", 1)
    verdict = judge([1], db, forge, [], [])
    assert verdict.violations == []
    assert verdict.stats["progress_comments"] == 1


def test_judge__progress_for_an_attempt_whose_agent_never_ran_breaks_p1() -> None:
    db, forge = clean_world()
    _with_progress(db, forge, "plan", 2)  # attempt 2 of the plan never ran an agent
    assert guarantees(db, forge) == ["P1"]


def test_judge__two_progress_comments_for_one_attempt_break_p1_and_g3() -> None:
    db, forge = clean_world()
    _with_progress(db, forge, "plan", 1)
    key = f"{REPO}#1/plan/1/progress"
    forge[1] = dataclasses.replace(
        forge[1], bot_comments=(*forge[1].bot_comments, (899, marker(key)))
    )
    assert sorted(set(guarantees(db, forge))) == ["G3", "P1"]
