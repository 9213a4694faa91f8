"""The plan phase through the real CLI: the model's text is the plan; nothing can be written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent_workflow.agents.claude import ClaudeAgent
from agent_workflow.core.model import Phase
from agent_workflow.core.ports import AgentRequest, Outcome
from agent_workflow.workspace import Workspace
from tests.agents.conftest import SESSION
from tests.support.fake_anthropic import FakeAnthropic, Script, call, say, steps

PLAN = "## Plan\n\n1. Add `perimeter(w, h)` to widgets/__init__.py.\n2. Test it."


async def test_plan__text_becomes_the_result_and_writes_are_refused(
    fake: FakeAnthropic,
    make_agent: Callable[..., ClaudeAgent],
    make_request: Callable[..., AgentRequest],
    workspace: Workspace,
    tmp_path: Path,
) -> None:
    outside = tmp_path / "outside.txt"
    fake.script = Script().main(
        steps(
            call("Read", {"file_path": "widgets/__init__.py"}),
            call("Write", {"file_path": "widgets/new.py", "content": "x = 1\n"}),
            call("Write", {"file_path": str(outside), "content": "escaped\n"}),
            call("Bash", {"command": "touch pwned", "description": "try a shell"}),
            call("Read", {"file_path": "/etc/hostname"}),
            say(PLAN),
        )
    )

    result = await make_agent().run(make_request(Phase.PLAN))

    assert result.outcome is Outcome.SUCCESS, result.reason
    assert result.text == PLAN
    assert result.session_id == SESSION
    assert result.turns >= 6
    assert result.cost_usd > 0
    assert result.terminal_reason == "completed"
    main = fake.recorder.main(SESSION)
    assert set(main[0].tool_names) >= {"Read", "Grep", "Glob"}
    assert not {"Write", "Edit", "Bash"} & set(main[0].tool_names)
    read, *refused = [r for c in main[1:] for r in c.tool_results]
    assert not read.is_error
    assert "def area" in read.content
    assert [r.is_error for r in refused] == [True, True, True, True]
    assert not outside.exists()
    assert not list(workspace.root.rglob("new.py"))
    assert not list(workspace.root.rglob("pwned"))


async def test_plan__blocked_line_blocks(
    fake: FakeAnthropic,
    make_agent: Callable[..., ClaudeAgent],
    make_request: Callable[..., AgentRequest],
) -> None:
    fake.script = Script().main(say("BLOCKED: the issue does not say which unit to use\n\nAsk."))

    result = await make_agent().run(make_request(Phase.PLAN))

    assert result.outcome is Outcome.BLOCKED
    assert result.reason == "the issue does not say which unit to use"


async def test_plan__prompt_carries_the_issue_and_a_repository_may_override_it(
    fake: FakeAnthropic,
    make_agent: Callable[..., ClaudeAgent],
    make_request: Callable[..., AgentRequest],
    tmp_path: Path,
) -> None:
    from tests.support.git_seed import push_commit

    fake.script = Script().main(say(PLAN))
    request = make_request(Phase.PLAN)
    await make_agent().run(request)
    first = fake.recorder.main(SESSION)[0]
    assert request.body in first.last_user_text
    assert "BLOCKED:" in first.last_user_text

    await push_commit(
        request.clone_url,
        "main",
        {".agent-workflow/prompts/plan.md": "Custom plan prompt for #${issue_number}: ${title}"},
        "custom prompt",
    )
    fake.recorder.clear()
    other = make_request(Phase.PLAN, session_id="5f0e8f52-3f0b-4c43-a0a5-0d6f7c1f3e21")
    await make_agent().run(other)
    prompt = fake.recorder.main(other.session_id)[0].last_user_text
    assert prompt.endswith("Custom plan prompt for #7: Add a perimeter function")
