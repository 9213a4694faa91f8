"""CommandAgent: a configured program as the agent, in the same checkouts as Claude."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from agent_workflow.agents.command import CommandAgent, CommandConfig
from agent_workflow.core.model import Phase
from agent_workflow.core.ports import AgentRequest, Outcome
from agent_workflow.workspace import Workspace
from tests.support.git_seed import remote_file, remote_sha

# A stand-in agent: records what it got, then does what its first argument says.
AGENT = """
import json, os, subprocess, sys, time
mode = sys.argv[1]
prompt = open(sys.argv[2]).read() if len(sys.argv) > 2 else sys.stdin.read()
env = {k: v for k, v in os.environ.items() if k.startswith("AW_")}
json.dump({"prompt": prompt, "env": env, "cwd": os.getcwd()}, open(os.environ["RECORD"], "w"))
if mode == "write":
    open("CHANGE.md", "w").write("changed\\n")
    print("Wrote CHANGE.md")
elif mode == "blocked":
    print("BLOCKED: the command cannot decide")
elif mode == "fail":
    print("boom", file=sys.stderr)
    sys.exit(3)
elif mode == "hang":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    open(os.environ["PIDS"], "w").write(f"{os.getpid()} {child.pid}")
    time.sleep(60)
else:
    print("A plan from a command.")
"""


@pytest.fixture
def make_command_agent(
    workspace: Workspace, tmp_path: Path
) -> Callable[..., tuple[CommandAgent, Path]]:
    """A CommandAgent running AGENT in `mode`; returns it and the file it records to."""
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    record = tmp_path / "record.json"

    def build(mode: str, extra: str = "", **config: float) -> tuple[CommandAgent, Path]:
        command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} {mode} {extra}"
        env = {"RECORD": str(record), "PIDS": str(tmp_path / "pids")}
        # Unsandboxed: the stand-in records to the test's directory and reports host pids
        # (test_agent_sandbox covers the sandboxed program).
        cfg = CommandConfig(command, env=env, sandbox=False, **config)
        return CommandAgent(workspace, cfg), record

    return build


async def test_command__stdout_is_the_result_and_the_prompt_arrives_on_stdin(
    make_command_agent: Callable[..., tuple[CommandAgent, Path]],
    make_request: Callable[..., AgentRequest],
) -> None:
    agent, record = make_command_agent("plan")
    request = make_request(Phase.PLAN, attempt=2)

    result = await agent.run(request)

    assert result.outcome is Outcome.SUCCESS
    assert result.text == "A plan from a command."
    seen = json.loads(record.read_text())
    assert request.body in seen["prompt"]
    assert seen["env"]["AW_SESSION_ID"] == request.session_id
    assert (seen["env"]["AW_PHASE"], seen["env"]["AW_ATTEMPT"]) == ("plan", "2")
    assert seen["env"]["AW_WORKTREE"] == seen["cwd"]
    assert seen["cwd"].endswith("issue-7/plan")


async def test_command__deliver_with_a_prompt_file_pushes_what_it_wrote(
    make_command_agent: Callable[..., tuple[CommandAgent, Path]],
    make_request: Callable[..., AgentRequest],
) -> None:
    agent, record = make_command_agent("write", "{prompt_file}")
    request = make_request(Phase.DELIVER)

    result = await agent.run(request)

    assert result.outcome is Outcome.SUCCESS, result.reason
    assert request.plan in json.loads(record.read_text())["prompt"]
    assert result.artifacts["head_sha"] == await remote_sha(request.clone_url, "agent/issue-7")
    assert await remote_file(request.clone_url, "agent/issue-7", "CHANGE.md") == "changed\n"


@pytest.mark.parametrize(
    ("mode", "outcome", "reason"),
    [
        ("blocked", Outcome.BLOCKED, "the command cannot decide"),
        ("fail", Outcome.ERROR, "command exited with 3: boom"),
    ],
)
async def test_command__blocked_and_failing_programs(
    make_command_agent: Callable[..., tuple[CommandAgent, Path]],
    make_request: Callable[..., AgentRequest],
    mode: str,
    outcome: Outcome,
    reason: str,
) -> None:
    agent, _ = make_command_agent(mode)

    result = await agent.run(make_request(Phase.PLAN))

    assert result.outcome is outcome
    assert result.reason == reason


async def test_command__cancellation_kills_the_process_group(
    make_command_agent: Callable[..., tuple[CommandAgent, Path]],
    make_request: Callable[..., AgentRequest],
    tmp_path: Path,
) -> None:
    agent, _ = make_command_agent("hang", kill_grace_s=1.0)
    run = asyncio.create_task(agent.run(make_request(Phase.PLAN)))
    pids_file = tmp_path / "pids"
    for _ in range(200):
        if pids_file.exists() and pids_file.read_text():
            break
        await asyncio.sleep(0.05)
    pids = [int(p) for p in pids_file.read_text().split()]

    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run

    for pid in pids:
        assert not _alive(pid), f"process {pid} survived the cancellation"


async def test_command__timeout_is_an_error(
    make_command_agent: Callable[..., tuple[CommandAgent, Path]],
    make_request: Callable[..., AgentRequest],
) -> None:
    agent, _ = make_command_agent("hang", timeout_s=0.5, kill_grace_s=0.5)

    result = await agent.run(make_request(Phase.PLAN))

    assert result.outcome is Outcome.ERROR
    assert result.reason == "command timed out"


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie awaiting its reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"
