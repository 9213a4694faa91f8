"""Resume on any machine: a worker dies mid-deliver, a worker on another "machine" resumes
the same session (from the database's transcript) in a worktree started from the dead
worker's checkpoint.

Two workers are real child processes (`worker_child.py`, configured like `aw worker`)
with their own `HOME`, `CLAUDE_CONFIG_DIR` and `AW_WORKSPACE_DIR`: nothing on the disk of
one is seen by the other. They share only what machines share: PostgreSQL, the GitHub
emulator, the git remote and the (fake) Messages API, which the real Claude Code CLI
talks to.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import pytest
from sqlalchemy import select, update

from agent_workflow.agents import transcripts
from agent_workflow.core.model import Event, Intent, Phase, PhaseStatus, Task
from agent_workflow.store import Store
from agent_workflow.store.schema import agent_runs, phase_runs
from agent_workflow.workspace.checkpoints import Owner, checkpoint_ref
from agent_workflow.workspace.git import Git
from tests.e2e_claude.helpers import (
    REPO,
    World,
    expected_session,
    killable_deliver_script,
    main_turns,
    make_core,
    worker_child_env,
)
from tests.support.git_seed import remote_file

CHILD = Path(__file__).with_name("worker_child.py")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.parametrize("db_url", ["postgres"], indirect=True),
]


@dataclasses.dataclass(frozen=True)
class Machine:
    """One worker's own disk: its home, the CLI's config dir, the workspace."""

    name: str
    root: Path

    @property
    def claude_config(self) -> Path:
        return self.root / "claude-config"

    def env(self, world: World, db_url: str) -> dict[str, str]:
        """An `aw worker`-like environment on this machine."""
        return worker_child_env(
            world,
            db_url,
            self.name,
            HOME=str(self.root / "home"),
            CLAUDE_CONFIG_DIR=str(self.claude_config),
            AW_WORKSPACE_DIR=str(self.root / "workspace"),
            AW_CONFIG_FILE=str(self.root / "no-config.toml"),
        )

    async def start(
        self, world: World, db_url: str, event: Event, extra: dict[str, str] | None = None
    ) -> asyncio.subprocess.Process:
        """Route `event` in a worker process group of this machine (python and its CLI)."""
        (self.root / "home").mkdir(parents=True, exist_ok=True)
        with (self.root / "worker.log").open("wb") as out:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                str(CHILD),
                json.dumps(dataclasses.asdict(event)),
                cwd=self.root,
                env={**self.env(world, db_url), **(extra or {})},
                start_new_session=True,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )

    def log(self) -> str:
        return (self.root / "worker.log").read_text(errors="replace")


async def _plan(store: Store, world: World) -> Task:
    routed = await make_core(store, world).router.route(world.event(Intent.START_PLAN))
    assert routed.status is PhaseStatus.COMPLETE, routed
    task = await store.tasks.find(REPO, world.issue)
    assert task is not None
    return task


async def _remote_refs(remote: str, prefix: str) -> list[str]:
    out = await Git().run("for-each-ref", "--format=%(refname)", prefix, cwd=Path(remote))
    return out.split()


async def _until(
    what: str,
    check: Callable[[], Awaitable[bool]],
    machine: Machine,
    child: asyncio.subprocess.Process,
) -> None:
    """Poll `check()` until true; fail if the worker exits first."""
    for _ in range(1200):
        if await check():
            return
        if child.returncode is not None:
            break
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}\n{machine.log()}")


def _has_first_tool_turn(entries: Sequence[Mapping[str, object]] | None) -> bool:
    """The mirrored transcript holds the first Write and its result."""
    kinds = set()
    for entry in entries or []:
        message = entry.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict):
                kinds.add(block.get("type"))
    return {"tool_use", "tool_result"} <= kinds


async def test_kill__another_machine_resumes_the_session_and_keeps_the_written_file(
    store: Store, world: World, db_url: str, tmp_path: Path
) -> None:
    """Window: SIGKILL of worker A (and its CLI) mid-deliver, after its first Write.

    `a.txt` exists only in A's worktree (and its checkpoint); the transcript only in A's
    config dir (and the database). Worker B, on another "machine", takes the phase over
    once A's lease ran out. Wanted: B resumes the same session id (the fake sees turn 1's
    Write and its result in B's first request; no second fresh start), the agent run is
    recorded as a resume (not restarted), and the pull request's branch has `a.txt` from
    before the kill beside `b.txt` from after; the settled phase's checkpoints are gone.
    """
    world.fake.script = killable_deliver_script(world)
    task = await _plan(store, world)
    session = expected_session(task.id, Phase.DELIVER)
    approve = world.event(Intent.APPROVE, delivery="d-approve")
    a, b = Machine("worker-a", tmp_path / "machine-a"), Machine("worker-b", tmp_path / "machine-b")
    ref = checkpoint_ref(Owner(task.id, task.issue_number), Phase.DELIVER.value, 1)

    child = await a.start(world, db_url, approve)
    try:
        await _until(
            "turn 2 reached the model",
            lambda: _async(len(main_turns(world.fake, session)) >= 2),
            a,
            child,
        )
        await _until(
            "the first Write was mirrored to the database",
            lambda: _mirrored(store, session),
            a,
            child,
        )
        await _until(
            "the checkpoint was pushed",
            lambda: _ref_exists(world.remote, ref),
            a,
            child,
        )
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        await child.wait()
    killed = len(main_turns(world.fake, session))
    assert killed == 2
    assert await remote_file(world.remote, world.branch, "a.txt") is None  # never pushed
    assert transcripts.find_transcript(b.claude_config, session) is None

    held = await store.phases.get(task.id, Phase.DELIVER)
    assert held is not None
    async with store.engine.begin() as conn:  # A's lease runs out
        await conn.execute(
            update(phase_runs).where(phase_runs.c.id == held.id).values(lease_until=time.time() - 1)
        )
    child_b = await b.start(world, db_url, approve)
    try:
        await asyncio.wait_for(child_b.wait(), timeout=180)
    finally:
        if child_b.returncode is None:
            os.killpg(child_b.pid, signal.SIGKILL)
            await child_b.wait()
    routed = b.log()
    assert '"status": "complete"' in routed, routed

    async with store.engine.connect() as conn:
        runs = (
            await conn.execute(
                select(
                    agent_runs.c.mode,
                    agent_runs.c.owner,
                    agent_runs.c.session_id,
                    agent_runs.c.restarted,
                )
                .join(phase_runs, phase_runs.c.id == agent_runs.c.phase_run_id)
                .where(phase_runs.c.task_id == task.id, phase_runs.c.phase == "deliver")
                .order_by(agent_runs.c.id)
            )
        ).all()
    assert [tuple(r) for r in runs] == [
        ("fresh", "worker-a", session, False),
        ("resume", "worker-b", session, False),
    ], routed
    turns = main_turns(world.fake, session)
    resumed = turns[killed]
    assert "You are implementing issue" in resumed.user_texts[0]  # the original prompt
    assert resumed.steps_done == 1, routed  # turn 1's Write and its result came back
    assert len(world.fake.recorder.fresh_starts(session)) == 1  # no fresh start on B
    assert transcripts.find_transcript(b.claude_config, session) is not None
    for name, text in (("a.txt", "a\n"), ("b.txt", "b\n")):
        assert await remote_file(world.remote, world.branch, name) == text, name
    assert len(await world.emu.admin.pulls(REPO)) == 1
    assert await _remote_refs(world.remote, "refs/agent-workflow/") == []  # settled: dropped


async def _async(value: bool) -> bool:
    return value


async def _mirrored(store: Store, session: str) -> bool:
    entries = await store.sessions.load({"project_key": "", "session_id": session})
    return _has_first_tool_turn(entries)


async def _ref_exists(remote: str, ref: str) -> bool:
    return ref in await _remote_refs(remote, ref)
