"""A review round with the real agent: the Claude Code CLI on the fake, the emulator, a bare remote.

After a real plan and delivery (as in `test_real_agent.py`), a trusted reviewer
requests changes with two line comments through the emulator; the revise event is
routed through the core (as the ingress would hand it over). The round reads the
review's comments from the emulator's REST API, the CLI edits the delivered file
and answers each comment under `### Reply to <id>`; the workspace pushes one new
commit (a fast-forward of the delivered head) and the hooks reply once in each
thread and post one summary. The kill test runs the round in a worker process
(`worker_child.py`) and SIGKILLs it mid-turn; a second worker resumes the session.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import update

from agent_workflow.core.effects import MARKER_PREFIX
from agent_workflow.core.model import Event, Intent, Phase, PhaseStatus, RoundTrigger, Task
from agent_workflow.store import Store
from agent_workflow.store.schema import phase_runs
from agent_workflow.workspace.git import Git
from github_emulator import Reviewed
from tests.e2e_claude.helpers import (
    BOT,
    PERIMETER_PATH,
    REPO,
    REVISE_PROMPT,
    TRUSTED,
    World,
    agent_run_rows,
    expected_session,
    lifecycle_report,
    lifecycle_script,
    main_turns,
    make_core,
)
from tests.e2e_claude.test_real_agent import (
    SQLITE_ONLY,
    _cli_gone,
    _start_child,
    _until_transcribed,
    _until_turn,
)
from tests.support.events import event
from tests.support.fake_anthropic import Responder, call, first_time, say, steps
from tests.support.git_seed import remote_file, remote_sha

REVIEW_BODY = "Two things before this can go in."
REVIEW_COMMENTS = [
    {"path": PERIMETER_PATH, "line": 2, "body": "Spell it out: `2 * w + 2 * h`."},
    {"path": PERIMETER_PATH, "line": 1, "body": "Add a docstring."},
]
REVISED = 'def perimeter(w, h):\n    """The perimeter of a w × h rectangle."""\n    return 2 * w + 2 * h\n'
ROUND_SUMMARY = "Spelled the formula out and documented `perimeter`."


def _replies_text(review: Reviewed) -> tuple[str, list[str]]:
    """The model's final message for `review`, and its reply to each comment (in order)."""
    answers = [
        "Now `2 * w + 2 * h`, as you asked.",
        "Added a one-line docstring.",
    ]
    sections = [
        f"### Reply to {cid}\n{text}" for cid, text in zip(review.comment_ids, answers, strict=True)
    ]
    return "\n\n".join([*sections, f"### Summary\n{ROUND_SUMMARY}"]), answers


def revise_steps(final: str, *, slow_edit_s: float = 0.0) -> Responder:
    """Read the delivered file, rewrite it (slowly the first time, if asked), answer."""
    write = call("Write", {"file_path": PERIMETER_PATH, "content": REVISED})
    second = (
        first_time(dataclasses.replace(write, delay_s=slow_edit_s), write) if slow_edit_s else write
    )
    return steps(call("Read", {"file_path": PERIMETER_PATH}), second, say(final))


async def _task(store: Store, world: World) -> Task:
    task = await store.tasks.find(REPO, world.issue)
    assert task is not None
    return task


async def _delivered(store: Store, world: World) -> tuple[Task, int, str]:
    """Plan and deliver through the core: the task, its PR number and the pushed head."""
    core = make_core(store, world)
    planned = await core.router.route(world.event(Intent.START_PLAN))
    assert planned.status is PhaseStatus.COMPLETE, planned
    delivered = await core.router.route(world.event(Intent.APPROVE))
    assert delivered.status is PhaseStatus.COMPLETE, delivered
    task = await _task(store, world)
    assert task.pr_number is not None
    head = await remote_sha(world.remote, world.branch)
    assert head is not None
    assert task.head_sha == head
    return task, task.pr_number, head


async def _review(world: World, pr: int) -> Reviewed:
    return await world.emu.admin.submit_review(
        REPO,
        pr,
        user=TRUSTED,
        state="changes_requested",
        body=REVIEW_BODY,
        comments=REVIEW_COMMENTS,
    )


def revise_event(world: World, pr: int, review: Reviewed, delivery: str) -> Event:
    """The `pull_request_review.submitted` event as the ingress parses it."""
    return event(
        Intent.REVISE,
        world.issue,
        delivery=delivery,
        actor=TRUSTED,
        repo=REPO,
        pr_number=pr,
        remote=world.remote,
        round=RoundTrigger(key=f"review:{review.id}", review_id=review.id, instruction=REVIEW_BODY),
    )


async def _commits_since(world: World, base: str) -> list[str]:
    """The commits on the task branch after `base`, newest first (fails if `base` is not an
    ancestor: the push was not a fast-forward)."""
    git, cwd = Git(), Path(world.remote)
    await git.run("merge-base", "--is-ancestor", base, f"refs/heads/{world.branch}", cwd=cwd)
    out = await git.run("rev-list", f"{base}..refs/heads/{world.branch}", cwd=cwd)
    return out.split()


async def _assert_answered(world: World, pr: int, review: Reviewed, answers: list[str]) -> None:
    """Exactly one reply (the model's) in each thread, and one round summary on the PR."""
    for comment_id, answer in zip(review.comment_ids, answers, strict=True):
        replies = await world.emu.admin.replies(REPO, pr, comment_id)
        assert [r.author for r in replies] == [BOT], replies
        assert replies[0].body.startswith(answer), replies[0].body
        assert MARKER_PREFIX in replies[0].body
    summaries = [
        c for c in await world.emu.admin.comments(REPO, pr) if c.body.startswith("## Review round")
    ]
    assert len(summaries) == 1, summaries
    assert summaries[0].author == BOT
    assert summaries[0].body.startswith(f"## Review round 1\n\n{ROUND_SUMMARY}")


async def test_review_round__the_model_edits_pushes_once_and_answers_each_thread(
    store: Store, world: World
) -> None:
    """Window: a `changes_requested` review with two line comments, its event routed twice.

    The CLI reads and rewrites the delivered file; the round pushes exactly one new
    commit on `agent/issue-N` of the bare remote, a fast-forward of the delivered head,
    which the task records as its PR's head. Each thread gets one reply, the model's
    text for it; the PR gets one "Review round 1" summary. The duplicate runs nothing.
    """
    world.fake.script = lifecycle_script(world)
    task, pr, delivered = await _delivered(store, world)
    review = await _review(world, pr)
    final, answers = _replies_text(review)
    world.fake.script = lifecycle_script(world, revise=revise_steps(final))
    revise = revise_event(world, pr, review, "d-review")
    core = make_core(store, world)

    first = await core.router.route(revise)
    second = await core.router.route(revise)

    assert first.status is second.status is PhaseStatus.COMPLETE, (first, second)
    new = await _commits_since(world, delivered)
    assert len(new) == 1, new
    assert await remote_file(world.remote, world.branch, PERIMETER_PATH) == REVISED
    task = await _task(store, world)
    assert task.head_sha == new[0]
    await _assert_answered(world, pr, review, answers)
    session = expected_session(task.id, Phase.REVISE)
    assert len(world.fake.recorder.fresh_starts(session)) == 1
    turns = main_turns(world.fake, session)
    assert len(turns) == 3  # Read, Write, the answers
    prompt = turns[0].user_texts[0]
    for comment_id, spec in zip(review.comment_ids, REVIEW_COMMENTS, strict=True):
        assert f'<comment id="{comment_id}"' in prompt
        assert str(spec["body"]) in prompt
    rounds = await store.rounds.all(task.id)
    assert [(r.phase, r.number, r.pushed_sha) for r in rounds] == [(Phase.REVISE, 1, new[0])]
    runs = [r for r in await agent_run_rows(store, task.id) if r.phase == Phase.REVISE]
    assert [(r.attempt, r.mode, r.session_id) for r in runs] == [(1, "fresh", session)]

    print(f"\n--- {REPO}#{world.issue}: one review round through the real CLI ---")
    print(await lifecycle_report(store, task.id))


@pytest.mark.slow
@SQLITE_ONLY
async def test_review_round__a_worker_killed_mid_round_is_resumed_and_replies_once(
    store: Store, world: World, db_url: str, tmp_path: Path
) -> None:
    """Window: SIGKILL of the worker process (and its CLI) while the model answers the
    round's turn 2 (the slow Write), after turn 1 (the Read) reached the transcript.

    The round is left `active` under the dead worker's lease; a duplicate meanwhile does
    nothing. After the lease, a second worker resumes the same session (`agent_runs`:
    fresh, then resume, one session id), finishes the edit, pushes one commit and
    replies once in each thread; one summary, one round.
    """
    world.fake.script = lifecycle_script(world)
    task, pr, delivered = await _delivered(store, world)
    review = await _review(world, pr)
    final, answers = _replies_text(review)
    world.fake.script = lifecycle_script(world, revise=revise_steps(final, slow_edit_s=60))
    revise = revise_event(world, pr, review, "d-review")
    session = expected_session(task.id, Phase.REVISE)
    log = tmp_path / "child.log"

    child = await _start_child(world, db_url, revise, "child-worker", log)
    await _until_turn(world, session, 2, child, log)
    await _until_transcribed(world, session)
    os.killpg(child.pid, signal.SIGKILL)
    await child.wait()
    assert await _cli_gone(world, session, within_s=5), "the CLI outlived its worker"
    killed = len(main_turns(world.fake, session))
    assert killed == 2

    held = await store.phases.get(task.id, Phase.REVISE)
    assert held is not None
    assert (held.status, held.lease_owner, held.session_id, held.attempt) == (
        PhaseStatus.ACTIVE,
        "child-worker",
        session,
        1,
    )
    core = make_core(store, world, owner="worker-b")
    early = await core.router.route(revise)
    assert early.status is PhaseStatus.ACTIVE  # the lease still lives: hands off (G2)
    assert len(main_turns(world.fake, session)) == killed

    async with store.engine.begin() as conn:  # the dead worker's lease runs out
        await conn.execute(
            update(phase_runs).where(phase_runs.c.id == held.id).values(lease_until=time.time() - 1)
        )
    routed = await core.router.route(revise)
    again = await core.router.route(revise)

    assert routed.status is again.status is PhaseStatus.COMPLETE, (routed, again)
    runs = [r for r in await agent_run_rows(store, task.id) if r.phase == Phase.REVISE]
    assert [(r.attempt, r.mode, r.owner, r.session_id) for r in runs] == [
        (1, "fresh", "child-worker", session),
        (1, "resume", "worker-b", session),
    ]
    assert len(world.fake.recorder.fresh_starts(session)) == 1  # no second fresh session
    resumed = main_turns(world.fake, session)[killed]
    assert REVISE_PROMPT in resumed.user_texts[0]  # the original prompt, resumed
    assert resumed.steps_done == 1  # the Read and its result came back
    new = await _commits_since(world, delivered)
    assert len(new) == 1, new
    assert await remote_file(world.remote, world.branch, PERIMETER_PATH) == REVISED
    await _assert_answered(world, pr, review, answers)
    rounds = await store.rounds.all(task.id)
    assert [(r.phase, r.number, r.pushed_sha) for r in rounds] == [(Phase.REVISE, 1, new[0])]

    print(f"\n--- {REPO}#{world.issue}: review round killed mid-turn, then resumed ---")
    print(await lifecycle_report(store, task.id))
