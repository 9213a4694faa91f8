"""What the pinned Claude Code CLI does, checked directly through claude-agent-sdk.

ClaudeAgent relies on each of these; docs/claude-cli.md describes them. If an
SDK/CLI upgrade changes one, this file says which assumption broke.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import claude_agent_sdk
import pytest
from claude_agent_sdk import (
    ClaudeAgentOptions,
    ClaudeSDKError,
    Message,
    ProcessError,
    ResultError,
    ResultMessage,
    query,
)

from agent_workflow.agents import transcripts
from tests.support.fake_anthropic import FakeAnthropic, Script, call, say, steps

SID = "7a1d3c2b-5e4f-4a6b-8c7d-9e0f1a2b3c4d"


@dataclass
class Run:
    """Everything one SDK query produced."""

    messages: list[Message] = field(default_factory=list)
    error: ClaudeSDKError | None = None
    stderr: list[str] = field(default_factory=list)

    @property
    def result(self) -> ResultMessage:
        """The run's result message (every run that reached the model has one)."""
        found = [m for m in self.messages if isinstance(m, ResultMessage)]
        assert found, f"no result; error={self.error!r} stderr={self.stderr}"
        return found[-1]


async def run_sdk(env: dict[str, str], cwd: Path, prompt: str = "hi", **options: Any) -> Run:
    """Run one query with `options`, collecting messages, the SDK error and stderr."""
    run = Run()
    await asyncio.to_thread(cwd.mkdir, parents=True, exist_ok=True)
    opts = ClaudeAgentOptions(cwd=str(cwd), env=env, stderr=run.stderr.append, **options)
    try:
        async for message in query(prompt=prompt, options=opts):
            run.messages.append(message)
    except ClaudeSDKError as exc:
        run.error = exc
    return run


async def test_cli__result_message_fields(
    fake: FakeAnthropic, claude_env: dict[str, str], tmp_path: Path
) -> None:
    fake.script = Script().main(say("hello"))

    run = await run_sdk(claude_env, tmp_path / "p", session_id=SID)

    res = run.result
    assert run.error is None
    assert (res.subtype, res.is_error, res.result, res.session_id) == (
        "success",
        False,
        "hello",
        SID,
    )
    assert (res.stop_reason, res.terminal_reason, res.num_turns) == ("end_turn", "completed", 1)
    assert res.total_cost_usd is not None
    assert res.total_cost_usd > 0
    assert res.duration_ms >= 0
    assert fake.recorder.main()[0].session_id == SID  # sent as x-claude-code-session-id


async def test_cli__transcript_lives_under_the_config_dir_by_cwd(
    fake: FakeAnthropic, claude_env: dict[str, str], tmp_path: Path
) -> None:
    fake.script = Script().main(say("hello"))
    cwd = tmp_path / "my.project"

    await run_sdk(claude_env, cwd, session_id=SID)

    config = Path(claude_env["CLAUDE_CONFIG_DIR"])
    sanitised = re.sub(r"[^A-Za-z0-9]", "-", str(cwd))  # every other character becomes "-"
    expected = config / "projects" / sanitised / f"{SID}.jsonl"
    assert expected.is_file()
    assert transcripts.find_transcript(config, SID) == expected
    assert transcripts.has_conversation(expected)


async def test_cli__reusing_a_session_id_fails_in_the_same_directory_only(
    fake: FakeAnthropic, claude_env: dict[str, str], tmp_path: Path
) -> None:
    fake.script = Script().main(say("hello"))
    await run_sdk(claude_env, tmp_path / "a", session_id=SID)

    again = await run_sdk(claude_env, tmp_path / "a", session_id=SID)
    elsewhere = await run_sdk(claude_env, tmp_path / "b", session_id=SID)

    assert isinstance(again.error, ProcessError)
    assert not isinstance(again.error, ResultError)
    assert again.error.exit_code == 1
    assert f"Session ID {SID} is already in use" in "\n".join(again.stderr)
    assert elsewhere.error is None  # a second fresh session beside the first!
    assert len(fake.recorder.fresh_starts(SID)) == 2


async def test_cli__resume_sends_the_earlier_turns(
    fake: FakeAnthropic, claude_env: dict[str, str], tmp_path: Path
) -> None:
    fake.script = Script().main(say("first answer"))
    await run_sdk(claude_env, tmp_path / "a", "first prompt", session_id=SID)

    resumed = await run_sdk(claude_env, tmp_path / "elsewhere", "second prompt", resume=SID)

    assert resumed.result.session_id == SID
    last = fake.recorder.main(SID)[-1]
    assert "first prompt" in last.user_texts[0]
    assert last.last_user_text == "second prompt"
    assert last.turn == 1  # the first answer came back
    assert resumed.result.num_turns == 1  # counted per run...
    assert resumed.result.total_cost_usd == pytest.approx(2 * run_cost(fake))  # ...cost per session


def run_cost(fake: FakeAnthropic) -> float:
    """What one default reply costs (every reply here has the same token counts)."""
    return 0.00024  # 10 input + 10 output tokens at the CLI's default model prices


async def test_cli__resume_of_an_unknown_session_is_an_error_result(
    fake: FakeAnthropic, claude_env: dict[str, str], tmp_path: Path
) -> None:
    run = await run_sdk(claude_env, tmp_path / "a", resume=SID)

    assert isinstance(run.error, ResultError)
    assert run.error.exit_code == 1
    assert not run.messages  # the error result is raised, not yielded
    assert f"No conversation found with session ID: {SID}" in str(run.error)
    assert fake.recorder.all() == []


async def test_cli__max_turns_is_an_error_result(
    fake: FakeAnthropic, claude_env: dict[str, str], tmp_path: Path
) -> None:
    fake.script = Script().main(call("Read", {"file_path": "x"}))

    run = await run_sdk(claude_env, tmp_path / "a", max_turns=2)

    res = run.result
    assert (res.subtype, res.is_error, res.terminal_reason) == (
        "error_max_turns",
        True,
        "max_turns",
    )
    assert res.errors == ["Reached maximum number of turns (2)"]
    assert isinstance(run.error, ResultError)  # raised after the result was yielded


async def test_cli__accept_edits_refuses_what_would_need_a_prompt(
    fake: FakeAnthropic, claude_env: dict[str, str], tmp_path: Path
) -> None:
    """No one answers a permission prompt: outside writes, reads and most shell commands fail."""
    cwd, outside = tmp_path / "a", tmp_path / "outside.txt"
    fake.script = Script().main(
        steps(
            call("Write", {"file_path": str(cwd / "in.txt"), "content": "in\n"}),
            call("Write", {"file_path": str(outside), "content": "out\n"}),
            call("Read", {"file_path": "/etc/hostname"}),
            call("Bash", {"command": "python3 -c 'print(1)'", "description": "run python"}),
            say("done"),
        )
    )

    run = await run_sdk(claude_env, cwd, permission_mode="acceptEdits")

    errors = [r.is_error for c in fake.recorder.main()[1:] for r in c.tool_results]
    assert errors == [False, True, True, True]
    assert (cwd / "in.txt").exists()
    assert not outside.exists()
    assert len(run.result.permission_denials or []) == 3


async def test_cli__a_run_killed_before_the_first_answer_leaves_no_answer_behind(
    fake: FakeAnthropic, claude_env: dict[str, str], tmp_path: Path
) -> None:
    """So a resume after such a death finds nothing and must start the id fresh."""
    fake.script = Script().main(say("too late", delay_s=60))
    cli = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
    cwd = tmp_path / "a"
    cwd.mkdir()
    proc = await asyncio.create_subprocess_exec(
        str(cli),
        "-p",
        "hi",
        f"--session-id={SID}",
        cwd=cwd,
        env={**os.environ, **claude_env},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    async with asyncio.timeout(30):
        await fake.wait_for(lambda rec: bool(rec.main(SID)))
    proc.kill()
    await proc.wait()

    # Usually no transcript at all; on a loaded machine the CLI may have written the
    # prompt first. Either way no answer is in it: a resume either starts the id fresh
    # or re-asks the prompt (`resumable_transcript` handles both).
    found = transcripts.find_transcript(Path(claude_env["CLAUDE_CONFIG_DIR"]), SID)
    if found is not None:
        assert '"type":"assistant"' not in found.read_text().replace(" ", "")
