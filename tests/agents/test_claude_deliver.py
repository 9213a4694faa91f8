"""The deliver phase through the real CLI: edits land as a pushed commit on agent/issue-N."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from agent_workflow.agents.claude import ClaudeAgent
from agent_workflow.core.model import Phase
from agent_workflow.core.ports import AgentRequest, Outcome
from agent_workflow.workspace import Workspace
from agent_workflow.workspace.git import Git
from tests.agents.conftest import SESSION
from tests.agents.helpers import cli_gone, cli_pids
from tests.support.fake_anthropic import FakeAnthropic, Script, call, say, steps
from tests.support.git_seed import push_commit, remote_file, remote_log, remote_sha

NEW_INIT = "def area(w, h):\n    return w * h\n\n\ndef perimeter(w, h):\n    return 2 * (w + h)\n"
TEST_FILE = (
    "from widgets import perimeter\n\n\ndef test_perimeter():\n    assert perimeter(2, 3) == 10\n"
)


def deliver_script(outside: Path) -> Script:
    """Read, edit, add a test, try to escape the worktree, then summarise."""
    return Script().main(
        steps(
            call("Read", {"file_path": "widgets/__init__.py"}),
            call(
                "Edit",
                {
                    "file_path": "widgets/__init__.py",
                    "old_string": "    return w * h\n",
                    "new_string": NEW_INIT.split("\n", 1)[1],
                },
            ),
            call("Write", {"file_path": "tests/test_perimeter.py", "content": TEST_FILE}),
            call("Write", {"file_path": str(outside), "content": "escaped\n"}),
            say("Added `perimeter(w, h)` and a test."),
        )
    )


async def test_deliver__edits_are_committed_and_pushed_on_the_issue_branch(
    fake: FakeAnthropic,
    make_agent: Callable[..., ClaudeAgent],
    make_request: Callable[..., AgentRequest],
    workspace: Workspace,
    tmp_path: Path,
) -> None:
    outside = tmp_path / "outside.txt"
    fake.script = deliver_script(outside)
    request = make_request(Phase.DELIVER)

    result = await make_agent().run(request)

    assert result.outcome is Outcome.SUCCESS, result.reason
    assert result.text == "Added `perimeter(w, h)` and a test."
    head = await remote_sha(request.clone_url, "agent/issue-7")
    assert result.artifacts == {"branch": "agent/issue-7", "head_sha": head, "base_branch": "main"}
    assert await remote_file(request.clone_url, "agent/issue-7", "widgets/__init__.py") == NEW_INIT
    assert (
        await remote_file(request.clone_url, "agent/issue-7", "tests/test_perimeter.py")
        == TEST_FILE
    )
    log = await remote_log(request.clone_url, "agent/issue-7")
    assert log[0].startswith("agent-workflow[bot]|Add a perimeter function (#7)")
    assert len(log) == 2  # the seed commit and ours
    assert not outside.exists()
    assert fake.recorder.main(SESSION)[-1].tool_results[0].is_error  # the escape was refused
    assert not (workspace.task_dir(request.repo, 7) / "deliver").exists()


async def test_deliver__nothing_changed_is_blocked(
    fake: FakeAnthropic,
    make_agent: Callable[..., ClaudeAgent],
    make_request: Callable[..., AgentRequest],
) -> None:
    fake.script = Script().main(say("Looks done already."))
    request = make_request(Phase.DELIVER)

    result = await make_agent().run(request)

    assert result.outcome is Outcome.BLOCKED
    assert result.reason == "the agent finished without changing anything"
    assert await remote_sha(request.clone_url, "agent/issue-7") is None


async def test_deliver__a_new_attempt_continues_from_the_pushed_branch(
    fake: FakeAnthropic,
    make_agent: Callable[..., ClaudeAgent],
    make_request: Callable[..., AgentRequest],
) -> None:
    """A branch pushed by an earlier attempt (or a taken-over worker) is the starting point."""
    request = make_request(
        Phase.DELIVER, attempt=2, session_id="9d2b1f4e-0c7a-4e55-8f43-6a1b2c3d4e5f"
    )
    await _push_branch(request.clone_url, "agent/issue-7", {"PARTIAL.md": "half done\n"})
    await push_commit(request.clone_url, "main", {"NOTES.md": "later\n"}, "main moves on")
    fake.script = Script().main(
        steps(call("Write", {"file_path": "DONE.md", "content": "done\n"}), say("Finished."))
    )

    result = await make_agent().run(request)

    assert result.outcome is Outcome.SUCCESS, result.reason
    branch = "agent/issue-7"
    assert await remote_file(request.clone_url, branch, "PARTIAL.md") == "half done\n"
    assert await remote_file(request.clone_url, branch, "DONE.md") == "done\n"
    # The base moved and the branch was pushed: merged (never rebased, never forced).
    assert await remote_file(request.clone_url, branch, "NOTES.md") == "later\n"
    subjects = [line.split("|", 1)[1] for line in await remote_log(request.clone_url, branch)]
    assert subjects[0].startswith("Merge")
    assert len(subjects) == 5  # seed, partial, main's, the attempt's commit, the merge


async def _push_branch(remote: str, branch: str, files: dict[str, str]) -> str:
    """Create `branch` from main with one commit, as an earlier attempt would have pushed it."""
    await Git().run("branch", branch, "main", cwd=Path(remote))
    return await push_commit(remote, branch, files, "earlier attempt")


async def test_deliver__cancellation_stops_the_cli_and_pushes_nothing(
    fake: FakeAnthropic,
    make_agent: Callable[..., ClaudeAgent],
    make_request: Callable[..., AgentRequest],
) -> None:
    fake.script = Script().main(
        steps(
            call("Write", {"file_path": "a.txt", "content": "a\n"}),
            say("never sent", delay_s=60),
        )
    )
    request = make_request(Phase.DELIVER)
    run = asyncio.create_task(make_agent().run(request))
    async with asyncio.timeout(30):
        await fake.wait_for(lambda rec: len(rec.main(SESSION)) == 2)
    assert cli_pids(SESSION), "the CLI should be running"

    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(run, timeout=4)  # the SDK alone waits 5 s for the CLI

    assert await cli_gone(SESSION, within_s=3)
    assert await remote_sha(request.clone_url, "agent/issue-7") is None
