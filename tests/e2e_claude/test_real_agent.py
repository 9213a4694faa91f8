"""The real agent: the Claude Code CLI against the scripted fake, end to end through the core.

Each test routes parsed events through `build_core` with the real `ClaudeAgent`
(the CLI bundled with claude-agent-sdk, talking to `FakeAnthropic`) and the
real `GitHubForge` (talking to the GitHub emulator). The issue's `clone_url` is
a local bare repository, so what the agent produced is read back with git. The
store is SQLite for the slow CLI tests; the plan test runs on both backends.
The kill test runs the worker as a real child process (`worker_child.py`,
configured like `aw worker` through `AW_*`) and SIGKILLs it mid-turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import update

from agent_workflow.agents import transcripts
from agent_workflow.agents.claude import PhaseLimits
from agent_workflow.core.effects import MARKER_PREFIX
from agent_workflow.core.hooks import LABEL_BLOCKED, LABEL_DONE, LABEL_PLANNED
from agent_workflow.core.model import Event, Intent, Phase, PhaseStatus, Task
from agent_workflow.store import Store
from agent_workflow.store.schema import phase_runs
from agent_workflow.workspace.git import Git
from tests.e2e_claude.helpers import (
    BOT,
    DELIVER_SUMMARY,
    LESSON,
    LESSONS_SUMMARY,
    PERIMETER,
    PERIMETER_PATH,
    PLAN_TEXT,
    REPO,
    World,
    agent_run_rows,
    expected_session,
    killable_deliver_script,
    lifecycle_report,
    lifecycle_script,
    main_turns,
    make_core,
    worker_child_env,
)
from tests.integration.helpers import (
    COMMENTS_POST,
    LABELS_POST,
    PERMISSION_GET,
    PULLS_POST,
    github_calls,
)
from tests.support.fake_anthropic import Conversation, call, first_time, say, steps
from tests.support.git_seed import remote_file, remote_log, remote_sha

CHILD = Path(__file__).with_name("worker_child.py")
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


async def _task(store: Store, world: World) -> Task:
    task = await store.tasks.find(REPO, world.issue)
    assert task is not None
    return task


async def _plan(store: Store, world: World) -> Task:
    """Route the plan to completion (setup for the later phases)."""
    routed = await make_core(store, world).router.route(world.event(Intent.START_PLAN))
    assert routed.status is PhaseStatus.COMPLETE, routed
    return await _task(store, world)


async def _deliver(store: Store, world: World) -> int:
    """Route `/approve` to a delivered pull request; its number."""
    routed = await make_core(store, world).router.route(world.event(Intent.APPROVE))
    assert routed.status is PhaseStatus.COMPLETE, routed
    task = await _task(store, world)
    assert task.pr_number is not None
    return task.pr_number


# -- 1. plan ---------------------------------------------------------------------------


async def test_plan__the_models_text_becomes_one_plan_comment(store: Store, world: World) -> None:
    """Window: the same plan event routed twice (a redelivered webhook, a retried job).

    The model's final text is posted once as the plan comment; the second routing
    finds the phase complete with its effects done and neither starts the CLI again
    nor calls GitHub.
    """
    world.fake.script = lifecycle_script(world)
    await world.emu.admin.reset_counters()
    core = make_core(store, world)
    plan = world.event(Intent.START_PLAN, delivery="d-plan")

    first = await core.router.route(plan)
    second = await core.router.route(plan)

    assert first.status is PhaseStatus.COMPLETE, first
    assert second.status is PhaseStatus.COMPLETE, second
    task = await _task(store, world)
    session = expected_session(task.id, Phase.PLAN)
    turns = main_turns(world.fake, session)
    assert len(turns) == 2  # the Read, then the plan: one CLI run, never a second
    assert len(world.fake.recorder.fresh_starts()) == 1
    assert world.fake.recorder.main() == turns  # no other session was started
    comments = await world.bot_comments()
    assert len(comments) == 1, comments
    assert comments[0].body.startswith(f"## Implementation plan\n\n{PLAN_TEXT}\n")
    assert MARKER_PREFIX in comments[0].body
    assert await world.emu.admin.labels(REPO, world.issue) == [LABEL_PLANNED]
    run = await store.phases.get(task.id, Phase.PLAN)
    assert run is not None
    assert run.session_id == session
    assert run.result_text == PLAN_TEXT
    assert github_calls(await world.emu.admin.counters()) == {
        PERMISSION_GET: 1,
        COMMENTS_POST: 1,
        LABELS_POST: 1,
    }


# -- 2. deliver ------------------------------------------------------------------------


@SQLITE_ONLY
async def test_deliver__the_models_write_becomes_a_commit_and_one_pull_request(
    store: Store, world: World
) -> None:
    """Window: `/approve` delivered twice after a real plan.

    The model's Write tool call edits the worktree; the workspace commits and pushes
    it to `agent/issue-N` of the bare remote; the hooks open exactly one pull request
    ("Closes #N") and post one comment linking it. The duplicate runs nothing.
    """
    world.fake.script = lifecycle_script(world)
    task = await _plan(store, world)
    await world.emu.admin.reset_counters()
    approve = world.event(Intent.APPROVE, delivery="d-approve")
    core = make_core(store, world)

    first = await core.router.route(approve)
    second = await core.router.route(approve)

    assert first.status is second.status is PhaseStatus.COMPLETE
    assert await remote_file(world.remote, world.branch, PERIMETER_PATH) == PERIMETER
    log = await remote_log(world.remote, world.branch)
    assert len(log) == 2, log  # the seed commit and the agent's
    assert log[0].startswith(f"{BOT}|")
    assert await remote_file(world.remote, "main", PERIMETER_PATH) is None
    pulls = await world.emu.admin.pulls(REPO)
    assert len(pulls) == 1, pulls
    pr = pulls[0]
    assert pr.pull is not None
    assert (pr.pull.head, pr.pull.base) == (world.branch, "main")
    assert pr.body.startswith(f"Closes #{world.issue}\n\n{DELIVER_SUMMARY}")
    task = await _task(store, world)
    assert task.pr_number == pr.number
    links = [c for c in await world.bot_comments() if f"#{pr.number}" in c.body]
    assert len(links) == 1, links
    session = expected_session(task.id, Phase.DELIVER)
    assert len(world.fake.recorder.fresh_starts(session)) == 1
    assert len(main_turns(world.fake, session)) == 2  # Write, then the summary
    run = await store.phases.get(task.id, Phase.DELIVER)
    assert run is not None
    assert run.artifacts["head_sha"] == await remote_sha(world.remote, world.branch)
    # Only the mutations themselves reached GitHub, and the actor's permission once: this
    # core (a new process, in effect) asks once, then the duplicate is answered by its cache.
    assert github_calls(await world.emu.admin.counters()) == {
        PERMISSION_GET: 1,
        PULLS_POST: 1,
        COMMENTS_POST: 1,
        LABELS_POST: 1,
    }


# -- 3. a worker killed during the model's turn ------------------------------------------


async def _start_child(
    world: World, db_url: str, event: Event, owner: str, log: Path
) -> asyncio.subprocess.Process:
    """Route `event` in a child process group (python + its CLI), as a worker would."""
    fields = dataclasses.asdict(event)
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            str(CHILD),
            json.dumps(fields),
            cwd=world.workspace_dir.parent,
            env=worker_child_env(world, db_url, owner),
            start_new_session=True,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )


async def _until_turn(
    world: World, session: str, turns: int, child: asyncio.subprocess.Process, log: Path
) -> None:
    """Wait until the fake has received `turns` requests of `session`; fail if the child exits."""
    reached = asyncio.create_task(world.fake.wait_for(lambda rec: len(rec.main(session)) >= turns))
    exited = asyncio.create_task(child.wait())
    done, _ = await asyncio.wait({reached, exited}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    for waiter in (reached, exited):
        waiter.cancel()
    await asyncio.gather(reached, exited, return_exceptions=True)
    if reached not in done:
        output = await asyncio.to_thread(log.read_text)
        raise AssertionError(f"child never reached turn {turns}:\n{output}")


def _cli_pids(world: World, session: str) -> list[int]:
    """Live CLIs of `session` started by this test (its own CLAUDE_CONFIG_DIR).

    Session ids are derived from (task, phase, attempt), so a concurrent run of these
    tests has the same ids: the config dir tells this test's processes apart.
    """
    mine = f"CLAUDE_CONFIG_DIR={world.claude_env['CLAUDE_CONFIG_DIR']}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if session.encode() in cmdline and mine in environ.split(b"\0") and state != "Z":
            pids.append(int(proc.name))
    return pids


async def _cli_gone(world: World, session: str, within_s: float) -> bool:
    """True once no CLI of this test's `session` runs, False if one still does after `within_s`."""
    for _ in range(int(within_s / 0.05) + 1):
        if not await asyncio.to_thread(_cli_pids, world, session):
            return True
        await asyncio.sleep(0.05)
    return False


def _transcript_entries(path: Path) -> list[str]:
    """`type:[block types]` of every user/assistant line of a CLI transcript."""
    entries = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            entries.append("<cut line>")
            continue
        message = entry.get("message")
        if entry.get("type") in ("user", "assistant") and isinstance(message, dict):
            content = message.get("content")
            kinds = [b.get("type") for b in content] if isinstance(content, list) else ["str"]
            entries.append(f"{entry['type']}:{kinds}")
    return entries


async def _until_transcribed(world: World, session: str) -> list[str]:
    """Wait until the CLI's transcript holds the first tool call (it is written asynchronously).

    The CLI sends turn 2's request about when it appends turn 1 to the transcript;
    a kill in between would leave nothing to resume but the prompt. Returns the
    transcript's conversation lines at that point (for failure messages).
    """
    config = transcripts.config_dir(world.claude_env)
    entries: list[str] = []
    for _ in range(200):
        found = await asyncio.to_thread(transcripts.find_transcript, config, session)
        if found is not None:
            entries = await asyncio.to_thread(_transcript_entries, found)
            if any(e.startswith("assistant:") and "tool_use" in e for e in entries):
                return entries
        await asyncio.sleep(0.05)
    raise AssertionError(f"turn 1 never reached the transcript: {entries}")


def describe(conv: Conversation) -> list[str]:
    """`role:[block types]` of every message of a request (for failure messages)."""
    out = []
    for message in conv.messages:
        content = message.get("content")
        kinds = [b.get("type") for b in content] if isinstance(content, list) else ["str"]
        out.append(f"{message.get('role')}:{kinds}")
    return out


@SQLITE_ONLY
async def test_kill__a_worker_killed_mid_turn_is_resumed_in_the_same_session(
    store: Store, world: World, db_url: str, tmp_path: Path
) -> None:
    """Window: SIGKILL of the worker process (and its CLI) while the model answers turn 2.

    The child routed `/approve`, claimed deliver, started the session fresh and got
    the first Write done; the kill leaves the phase `active` under a lease. While
    that lease lives a duplicate does nothing (G2). Once it has expired the same
    event resumes the same session id: `agent_runs` shows `fresh` then `resume`,
    the fake sees the earlier turns in the resumed request, and no second fresh
    start ever reaches it.
    """
    world.fake.script = killable_deliver_script(world)
    task = await _plan(store, world)
    session = expected_session(task.id, Phase.DELIVER)
    approve = world.event(Intent.APPROVE, delivery="d-approve")
    log = tmp_path / "child.log"

    child = await _start_child(world, db_url, approve, "child-worker", log)
    await _until_turn(world, session, 2, child, log)
    transcript_at_kill = await _until_transcribed(world, session)
    os.killpg(child.pid, signal.SIGKILL)
    await child.wait()
    assert await _cli_gone(world, session, within_s=5), "the CLI outlived its worker"
    killed = len(main_turns(world.fake, session))
    assert killed == 2

    held = await store.phases.get(task.id, Phase.DELIVER)
    assert held is not None
    assert (held.status, held.lease_owner, held.session_id) == (
        PhaseStatus.ACTIVE,
        "child-worker",
        session,
    )
    core = make_core(store, world, owner="worker-b")
    early = await core.router.route(approve)
    assert early.status is PhaseStatus.ACTIVE  # the lease still lives: hands off (G2)
    assert len(main_turns(world.fake, session)) == killed

    async with store.engine.begin() as conn:  # the dead worker's lease runs out
        await conn.execute(
            update(phase_runs).where(phase_runs.c.id == held.id).values(lease_until=time.time() - 1)
        )
    routed = await core.router.route(approve)

    assert routed.status is PhaseStatus.COMPLETE, routed
    runs = [r for r in await agent_run_rows(store, task.id) if r.phase == Phase.DELIVER]
    assert [(r.mode, r.owner, r.session_id) for r in runs] == [
        ("fresh", "child-worker", session),
        ("resume", "worker-b", session),
    ]
    assert [r.fence for r in runs] == [1, 2]
    turns = main_turns(world.fake, session)
    resumed = turns[killed]
    assert "You are implementing issue" in resumed.user_texts[0]  # the original prompt
    assert "was interrupted" in resumed.last_user_text
    # The first Write and its result came back.
    assert resumed.steps_done == 1, (describe(resumed), transcript_at_kill)
    assert resumed.turn >= 1
    assert len(world.fake.recorder.fresh_starts(session)) == 1  # no second fresh session
    deliver_sessions = {
        c.session_id for c in world.fake.recorder.main() if c.mentions("You are implementing")
    }
    assert deliver_sessions == {session}
    for name, text in (("a.txt", "a\n"), ("b.txt", "b\n")):
        assert await remote_file(world.remote, world.branch, name) == text
    assert len(await world.emu.admin.pulls(REPO)) == 1
    final = await store.phases.get(task.id, Phase.DELIVER)
    assert final is not None
    assert final.session_id == session

    print(f"\n--- {REPO}#{world.issue}: deliver killed mid-turn, then resumed ---")
    print(await lifecycle_report(store, task.id))


@SQLITE_ONLY
async def test_kill__the_cli_dies_with_its_worker(
    store: Store, world: World, db_url: str, tmp_path: Path
) -> None:
    """Window: SIGKILL of the worker process alone (the OOM killer, `kill -9 <pid>`), mid-turn.

    Only the Python worker dies; its Claude Code CLI is not in the kill. Wanted: the
    CLI goes with it, so nothing but the takeover ever speaks for the session (G2).
    Without a parent-death signal the orphaned CLI waited out the in-flight answer, then
    kept requesting turns and appending to the transcript while another worker resumed
    the session; the transport now runs it under `setpriv --pdeathsig KILL`.
    """
    second = call("Write", {"file_path": "b.txt", "content": "b\n"})
    world.fake.script = lifecycle_script(
        world,
        deliver=steps(
            call("Write", {"file_path": "a.txt", "content": "a\n"}),
            first_time(dataclasses.replace(second, delay_s=4), second),
            say("Wrote a.txt and b.txt."),
        ),
    )
    task = await _plan(store, world)
    session = expected_session(task.id, Phase.DELIVER)
    log = tmp_path / "child.log"
    child = await _start_child(world, db_url, world.event(Intent.APPROVE), "child-worker", log)
    await _until_turn(world, session, 2, child, log)
    try:
        os.kill(child.pid, signal.SIGKILL)  # the worker only, not its process group
        await child.wait()
        assert await _cli_gone(world, session, within_s=2), "the CLI outlived its worker"
    finally:
        for pid in _cli_pids(world, session):  # the orphan this test made, if any
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# -- 4. budgets ------------------------------------------------------------------------


@SQLITE_ONLY
async def test_budget__turn_limit_blocks_with_one_comment_naming_it(
    store: Store, world: World
) -> None:
    """Window: the model never stops calling tools and hits `max_turns` (2).

    The phase is blocked with a reason naming the limit; exactly one
    `agent-blocked` comment says so (also when the event comes again), and the
    issue gets the `agent-blocked` label.
    """
    world.fake.script = lifecycle_script(world, plan=call("Read", {"file_path": "README.md"}))
    limits = {phase: PhaseLimits(max_turns=2, max_budget_usd=5.0) for phase in Phase}
    core = make_core(store, world, limits=limits)
    plan = world.event(Intent.START_PLAN, delivery="d-plan")

    first = await core.router.route(plan)
    second = await core.router.route(plan)

    assert first.status is second.status is PhaseStatus.BLOCKED
    task = await _task(store, world)
    run = await store.phases.get(task.id, Phase.PLAN)
    assert run is not None
    assert run.blocked_reason == "turn limit 2 reached"
    comments = await world.bot_comments()
    assert len(comments) == 1, comments
    assert "agent-blocked" in comments[0].body
    # The comment names the class and the run; the raw reason stays in the database.
    assert "Reason: turn limit 2 reached." in comments[0].body  # a limit is named
    assert f"run-{run.id}.{run.attempt}" in comments[0].body
    assert await world.emu.admin.labels(REPO, world.issue) == [LABEL_BLOCKED]
    session = expected_session(task.id, Phase.PLAN)
    assert len(world.fake.recorder.fresh_starts(session)) == 1
    assert len(main_turns(world.fake, session)) == 2


@SQLITE_ONLY
async def test_budget__an_exhausted_task_budget_blocks_without_starting_the_cli(
    store: Store, world: World
) -> None:
    """Window: the task's budget is already spent (0 left) when the phase starts.

    No CLI is started (the fake receives nothing); one `agent-blocked` comment
    names the task budget.
    """
    world.fake.script = lifecycle_script(world)
    core = make_core(store, world, task_budget_usd=0.0)

    routed = await core.router.route(world.event(Intent.START_PLAN))

    assert routed.status is PhaseStatus.BLOCKED
    assert world.fake.recorder.all() == []
    comments = await world.bot_comments()
    assert len(comments) == 1, comments
    assert "agent-blocked" in comments[0].body
    assert "budget exhausted" in comments[0].body
    assert await world.emu.admin.labels(REPO, world.issue) == [LABEL_BLOCKED]


@SQLITE_ONLY
async def test_retry__after_a_block_a_new_attempt_starts_a_new_session(
    store: Store, world: World
) -> None:
    """Window: a trusted `/retry` after the turn limit blocked the plan (delivered twice).

    The blocked attempt keeps its one comment; attempt 2 starts fresh under a new
    session id (never resuming attempt 1's), posts the plan once and swaps the
    `agent-blocked` label for `agent-planned`.
    """
    world.fake.script = lifecycle_script(world, plan=call("Read", {"file_path": "README.md"}))
    limits = {phase: PhaseLimits(max_turns=2, max_budget_usd=5.0) for phase in Phase}
    blocked = await make_core(store, world, limits=limits).router.route(
        world.event(Intent.START_PLAN)
    )
    assert blocked.status is PhaseStatus.BLOCKED
    world.fake.script = lifecycle_script(world)
    core = make_core(store, world)
    retry = world.event(Intent.RETRY, delivery="d-retry")

    first = await core.router.route(retry)
    second = await core.router.route(retry)

    assert first.status is second.status is PhaseStatus.COMPLETE
    task = await _task(store, world)
    runs = await agent_run_rows(store, task.id)
    assert [(r.attempt, r.mode, r.session_id) for r in runs] == [
        (1, "fresh", expected_session(task.id, Phase.PLAN, 1)),
        (2, "fresh", expected_session(task.id, Phase.PLAN, 2)),
    ]
    assert len(world.fake.recorder.fresh_starts()) == 2  # one per attempt
    bodies = [c.body for c in await world.bot_comments()]
    assert len(bodies) == 2, bodies
    assert bodies[0].startswith("**agent-blocked**")
    assert bodies[1].startswith(f"## Implementation plan\n\n{PLAN_TEXT}")
    assert await world.emu.admin.labels(REPO, world.issue) == [LABEL_PLANNED]


# -- 5. compound, and the whole lifecycle ------------------------------------------------


@SQLITE_ONLY
async def test_compound__after_the_merge_a_lesson_lands_and_one_summary_is_posted(
    store: Store, world: World
) -> None:
    """Window: the delivered PR is merged and the merge event arrives (twice).

    The compound session writes `docs/solutions/...` (its Write tool call) on
    `agent/issue-N-compound` in the bare remote, the hooks open one small lessons
    PR for that branch and post exactly one summary comment. Prints the whole
    lifecycle's cost, turns and session ids (`pytest -s`).
    """
    world.fake.script = lifecycle_script(world)
    task = await _plan(store, world)
    pr = await _deliver(store, world)
    await world.emu.admin.merge_pull(REPO, pr, user="alice")
    # The emulator keeps no git objects: merge in the bare remote too (a fast-forward).
    await Git().run(
        "update-ref", "refs/heads/main", f"refs/heads/{world.branch}", cwd=Path(world.remote)
    )
    merged = world.event(Intent.MERGED, delivery="d-merged", pr_number=pr)
    core = make_core(store, world)

    first = await core.router.route(merged)
    second = await core.router.route(merged)

    assert first.status is second.status is PhaseStatus.COMPLETE
    lessons_branch = f"{world.branch}-compound"
    assert await remote_file(world.remote, lessons_branch, world.solution_path) == LESSON
    pointer = await remote_file(world.remote, lessons_branch, "CLAUDE.md")
    assert pointer is not None
    assert "docs/solutions/" in pointer
    assert await remote_file(world.remote, lessons_branch, PERIMETER_PATH) == PERIMETER
    assert await remote_file(world.remote, "main", world.solution_path) is None
    pulls = await world.emu.admin.pulls(REPO)
    assert [p.pull.head for p in pulls if p.pull is not None] == [world.branch, lessons_branch]
    lessons_pr = pulls[1].number
    summaries = [c for c in await world.bot_comments() if c.body.startswith("## What we learned")]
    assert len(summaries) == 1, summaries
    assert LESSONS_SUMMARY in summaries[0].body
    assert f"#{lessons_pr}" in summaries[0].body
    assert LABEL_DONE in await world.emu.admin.labels(REPO, world.issue)
    assert len(await world.bot_comments()) == 3  # plan, PR link, summary
    session = expected_session(task.id, Phase.COMPOUND)
    assert len(world.fake.recorder.fresh_starts(session)) == 1
    runs = await agent_run_rows(store, task.id)
    assert [(r.phase, r.mode) for r in runs] == [
        (Phase.PLAN, "fresh"),
        (Phase.DELIVER, "fresh"),
        (Phase.COMPOUND, "fresh"),
    ]
    assert [r.session_id for r in runs] == [
        expected_session(task.id, phase) for phase in (Phase.PLAN, Phase.DELIVER, Phase.COMPOUND)
    ]

    print(f"\n--- one lifecycle of {REPO}#{world.issue} through the real CLI ---")
    print(await lifecycle_report(store, task.id))
