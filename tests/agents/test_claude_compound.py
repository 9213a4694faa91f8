"""The compound phase: a lesson in docs/solutions/ and a CLAUDE.md pointer, on their own branch."""

from __future__ import annotations

from collections.abc import Callable

from agent_workflow.agents.claude import ClaudeAgent
from agent_workflow.core.model import Phase
from agent_workflow.core.ports import AgentRequest, Outcome
from tests.support.fake_anthropic import FakeAnthropic, Script, call, say, steps
from tests.support.git_seed import push_commit, remote_file, remote_log, remote_sha

NOTE_PATH = "docs/solutions/issue-7-add-a-perimeter-function.md"
NOTE = "# perimeter\n\nKeep geometry helpers together in widgets/__init__.py.\n"
BRANCH = "agent/issue-7-compound"


async def test_compound__the_lesson_and_a_pointer_land_on_the_compound_branch(
    fake: FakeAnthropic,
    make_agent: Callable[..., ClaudeAgent],
    make_request: Callable[..., AgentRequest],
) -> None:
    fake.script = Script().main(
        steps(
            call("Write", {"file_path": NOTE_PATH, "content": NOTE}),
            say("Geometry helpers live together; tests sit beside them."),
        )
    )
    request = make_request(Phase.COMPOUND, pr_number=12)

    result = await make_agent().run(request)

    assert result.outcome is Outcome.SUCCESS, result.reason
    assert NOTE_PATH in fake.recorder.main()[0].last_user_text  # the prompt names the path
    assert await remote_file(request.clone_url, BRANCH, NOTE_PATH) == NOTE
    pointer = await remote_file(request.clone_url, BRANCH, "CLAUDE.md")
    assert pointer is not None
    assert "docs/solutions/" in pointer
    assert result.artifacts == {
        "branch": BRANCH,
        "head_sha": await remote_sha(request.clone_url, BRANCH),
        "base_branch": "main",
        "solution_path": NOTE_PATH,
    }
    assert len(await remote_log(request.clone_url, BRANCH)) == 2
    assert await remote_file(request.clone_url, "main", NOTE_PATH) is None  # main untouched


async def test_compound__a_lesson_only_told_is_written_down_and_an_existing_pointer_kept(
    fake: FakeAnthropic,
    make_agent: Callable[..., ClaudeAgent],
    make_request: Callable[..., AgentRequest],
) -> None:
    request = make_request(Phase.COMPOUND)
    claude_md = "# Rules\n\nSee docs/solutions/ for lessons.\n"
    await push_commit(request.clone_url, "main", {"CLAUDE.md": claude_md}, "merge #12")
    fake.script = Script().main(say("Keep geometry helpers together."))

    result = await make_agent().run(request)

    assert result.outcome is Outcome.SUCCESS, result.reason
    note = await remote_file(request.clone_url, BRANCH, NOTE_PATH)
    assert note is not None
    assert "Keep geometry helpers together." in note
    assert await remote_file(request.clone_url, BRANCH, "CLAUDE.md") == claude_md
    assert result.artifacts["solution_path"] == NOTE_PATH
