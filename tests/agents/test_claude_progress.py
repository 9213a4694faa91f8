"""Live progress through the real CLI: the agent's TodoWrite list and its tool calls reach
the progress the runner's reporter renders (`core.progress`)."""

from __future__ import annotations

from collections.abc import Callable

from agent_workflow.agents.claude import ClaudeAgent
from agent_workflow.core.model import Phase
from agent_workflow.core.ports import AgentRequest, Outcome
from agent_workflow.core.progress import Progress, render, reporting
from tests.support.fake_anthropic import FakeAnthropic, Script, call, say, steps

TODOS = [
    {"content": "Read the widgets module", "status": "completed", "activeForm": "Reading"},
    {"content": "Write down the perimeter step", "status": "in_progress", "activeForm": "Writing"},
    {"content": "Ping @octocat when done", "status": "pending", "activeForm": "Pinging"},
]


async def test_progress__todo_list_and_tool_calls_reach_the_progress_text(
    fake: FakeAnthropic,
    make_agent: Callable[..., ClaudeAgent],
    make_request: Callable[..., AgentRequest],
) -> None:
    fake.script = Script().main(
        steps(
            call("TodoWrite", {"todos": TODOS}),
            call("Read", {"file_path": "widgets/__init__.py"}),
            say("## Plan\n\n1. Add `perimeter`."),
        )
    )
    reports: list[Progress] = []

    with reporting(reports.append):
        result = await make_agent().run(make_request(Phase.PLAN))

    assert result.outcome is Outcome.SUCCESS, result.reason
    with_list = [p for p in reports if p.checklist]
    assert with_list, reports
    assert [(s.text, s.done, s.active) for s in with_list[0].checklist] == [
        ("Read the widgets module", True, False),
        ("Write down the perimeter step", False, True),
        ("Ping @octocat when done", False, False),
    ]
    last = reports[-1]
    assert last.doing == "Read widgets/__init__.py"
    assert last.turns >= 2
    assert last.cost_usd > 0
    text = render(last, title="plan (attempt 1)", elapsed_s=65.0)
    assert "- ✅ Read the widgets module" in text
    assert "- ▶️ **Write down the perimeter step**" in text
    assert "@\u200boctocat" in text  # agent text is neutralised: no mention
    assert "Working: Read widgets/__init__.py" in text
    assert "1m 05s" in text
