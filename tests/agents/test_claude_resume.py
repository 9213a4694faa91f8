"""Sessions: a worker killed mid-turn is resumed, never started again beside itself (G2)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from claude_agent_sdk.types import SessionKey

from agent_workflow.agents import transcripts
from agent_workflow.agents.claude import ClaudeAgent, ClaudeConfig
from agent_workflow.core.model import Phase
from agent_workflow.core.ports import AgentRequest, Outcome
from agent_workflow.store import Store
from agent_workflow.workspace import Workspace
from tests.agents.conftest import SESSION
from tests.support.fake_anthropic import (
    FakeAnthropic,
    Script,
    call,
    first_time,
    say,
    steps,
)
from tests.support.git_seed import remote_file

ROOT = Path(__file__).resolve().parents[2]


async def _start_worker(
    request: AgentRequest, workspace: Workspace, env: dict[str, str]
) -> asyncio.subprocess.Process:
    """Run the agent in a child process group (python + the CLI), as a worker would."""
    spec = {
        "workspace": str(workspace.root),
        "env": env,
        "request": {**dataclasses.asdict(request), "phase": request.phase.value},
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.agents.agent_child",
        json.dumps(spec),
        cwd=ROOT,
        start_new_session=True,
        stdout=asyncio.subprocess.DEVNULL,
    )


def _transcribed_tool_use(config: Path) -> bool:
    found = transcripts.find_transcript(config, SESSION)
    return found is not None and '"tool_use"' in found.read_text()


async def test_resume__a_worker_killed_mid_turn_is_resumed_with_its_earlier_turns(
    fake: FakeAnthropic,
    make_agent: Callable[..., ClaudeAgent],
    make_request: Callable[..., AgentRequest],
    workspace: Workspace,
    claude_env: dict[str, str],
) -> None:
    """Window: the worker (and its CLI) die while the model is answering the 2nd turn."""
    second = call("Write", {"file_path": "b.txt", "content": "b\n"})
    fake.script = Script().main(
        steps(
            call("Write", {"file_path": "a.txt", "content": "a\n"}),
            first_time(dataclasses.replace(second, delay_s=60), second),
            say("Wrote a.txt and b.txt."),
        )
    )
    request = make_request(Phase.DELIVER)

    worker = await _start_worker(request, workspace, claude_env)
    async with asyncio.timeout(30):
        await fake.wait_for(lambda rec: len(rec.main(SESSION)) == 2)
        # The CLI appends turn 1 to its transcript about when it sends turn 2's request;
        # killing in between would leave only the prompt to resume.
        while not _transcribed_tool_use(transcripts.config_dir(claude_env)):  # noqa: ASYNC110 - a file, no event
            await asyncio.sleep(0.05)
    os.killpg(worker.pid, signal.SIGKILL)
    await worker.wait()
    config = transcripts.config_dir(claude_env)
    assert transcripts.find_transcript(config, SESSION) is not None
    killed = len(fake.recorder.main(SESSION))

    result = await make_agent().run(dataclasses.replace(request, resume=True))

    assert result.outcome is Outcome.SUCCESS, result.reason
    assert not result.restarted
    assert result.session_id == SESSION
    resumed = fake.recorder.main(SESSION)[killed]
    assert request.body in resumed.user_texts[0]  # the original prompt came back
    assert "was interrupted" in resumed.last_user_text
    assert resumed.steps_done == 1  # the first Write and its result came back
    assert len(fake.recorder.fresh_starts(SESSION)) == 1
    for name, text in (("a.txt", "a\n"), ("b.txt", "b\n")):
        assert await remote_file(request.clone_url, "agent/issue-7", name) == text


async def test_resume__no_transcript_starts_fresh_under_the_same_id_and_says_so(
    fake: FakeAnthropic,
    make_agent: Callable[..., ClaudeAgent],
    make_request: Callable[..., AgentRequest],
) -> None:
    """Window: the predecessor died before the model's first answer (no transcript yet)."""
    fake.script = Script().main(say("The plan."))

    result = await make_agent().run(make_request(Phase.PLAN, resume=True))

    assert result.outcome is Outcome.SUCCESS
    assert result.restarted
    assert result.session_id == SESSION
    assert [c.session_id for c in fake.recorder.fresh_starts()] == [SESSION]


async def test_resume__an_existing_transcript_is_never_started_again(
    fake: FakeAnthropic,
    make_agent: Callable[..., ClaudeAgent],
    make_request: Callable[..., AgentRequest],
) -> None:
    """Even when the caller does not ask to resume, a second fresh start is not made."""
    fake.script = Script().main(say("The plan."))
    agent = make_agent()
    first = await agent.run(make_request(Phase.PLAN))
    second = await agent.run(make_request(Phase.PLAN))

    assert first.outcome is second.outcome is Outcome.SUCCESS
    assert not second.restarted
    assert second.cost_usd == pytest.approx(first.cost_usd)  # this run's cost, not the session's
    assert len(fake.recorder.fresh_starts(SESSION)) == 1
    assert fake.recorder.main(SESSION)[-1].turn >= 1  # the second run carried the first


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_resume__an_unusable_stored_transcript_is_dropped_before_the_fresh_start(
    fake: FakeAnthropic,
    workspace: Workspace,
    claude_env: dict[str, str],
    make_request: Callable[..., AgentRequest],
    store: Store,
) -> None:
    """The store holds lines of the session but no conversation (a predecessor killed before
    the model's first answer): the id starts afresh, and the stale lines go first, so a
    later takeover restores the fresh run alone, not both joined."""
    key: SessionKey = {"project_key": "elsewhere", "session_id": SESSION}
    await store.sessions.append(key, [{"type": "summary", "uuid": "stale-1", "summary": "x"}])
    fake.script = Script().main(say("The plan."))
    agent = ClaudeAgent(workspace, ClaudeConfig(env=claude_env), sessions=store.sessions)

    result = await agent.run(make_request(Phase.PLAN, resume=True))

    assert result.outcome is Outcome.SUCCESS
    assert result.restarted
    kept = await store.sessions.load(key) or []
    assert kept, "the fresh run was not mirrored"
    assert all(entry.get("uuid") != "stale-1" for entry in kept), kept[:2]
