"""Budgets: running out of turns or dollars blocks the phase with a reason naming the limit."""

from __future__ import annotations

from collections.abc import Callable

from agent_workflow.agents.claude import ClaudeAgent
from agent_workflow.core.model import Phase
from agent_workflow.core.ports import AgentRequest, Outcome
from tests.agents.conftest import SESSION, limits
from tests.support.fake_anthropic import FakeAnthropic, Reply, Script, call

# The model never stops reading.
ENDLESS = call("Read", {"file_path": "README.md"})
# About $0.40 per answer at the fake's default model's prices.
EXPENSIVE = call("Read", {"file_path": "README.md"}, input_tokens=100_000)


async def test_budget__turn_limit_blocks(
    fake: FakeAnthropic,
    make_agent: Callable[..., ClaudeAgent],
    make_request: Callable[..., AgentRequest],
) -> None:
    fake.script = Script().main(ENDLESS)

    result = await make_agent(limits=limits(max_turns=3)).run(make_request(Phase.PLAN))

    assert result.outcome is Outcome.BLOCKED
    assert result.reason == "turn limit 3 reached"
    assert result.terminal_reason == "max_turns"
    assert len(fake.recorder.main(SESSION)) == 3


async def test_budget__phase_budget_blocks(
    fake: FakeAnthropic,
    make_agent: Callable[..., ClaudeAgent],
    make_request: Callable[..., AgentRequest],
) -> None:
    fake.script = Script().main(EXPENSIVE)

    result = await make_agent(limits=limits(max_budget_usd=0.5)).run(make_request(Phase.PLAN))

    assert result.outcome is Outcome.BLOCKED
    assert result.reason == "budget $0.50 exhausted"
    assert result.terminal_reason == "budget_exhausted"
    assert result.cost_usd > 0.5


async def test_budget__the_task_cap_lowers_the_phase_budget(
    fake: FakeAnthropic,
    make_agent: Callable[..., ClaudeAgent],
    make_request: Callable[..., AgentRequest],
) -> None:
    fake.script = Script().main(EXPENSIVE)
    request = make_request(Phase.PLAN, budget_left_usd=0.3)

    result = await make_agent(limits=limits(max_budget_usd=5.0)).run(request)

    assert result.outcome is Outcome.BLOCKED
    assert result.reason == "task budget exhausted ($0.30 was left for this run)"
    assert len(fake.recorder.main(SESSION)) == 1


async def test_budget__nothing_left_blocks_without_starting(
    fake: FakeAnthropic,
    make_agent: Callable[..., ClaudeAgent],
    make_request: Callable[..., AgentRequest],
) -> None:
    fake.script = Script().main(Reply(text="never asked"))

    result = await make_agent().run(make_request(Phase.PLAN, budget_left_usd=0.0))

    assert result.outcome is Outcome.BLOCKED
    assert "task budget exhausted" in result.reason
    assert fake.recorder.all() == []


async def test_result__an_api_error_is_an_error_not_a_success(
    fake: FakeAnthropic,
    make_agent: Callable[..., ClaudeAgent],
    make_request: Callable[..., AgentRequest],
) -> None:
    """The CLI reports subtype "success" with is_error=true for a failed API call."""
    from tests.support.fake_anthropic import ApiError

    fake.script = Script().main(Reply(error=ApiError(400, message="scripted failure")))

    result = await make_agent().run(make_request(Phase.PLAN))

    assert result.outcome is Outcome.ERROR
    assert "scripted failure" in result.reason
    assert result.terminal_reason == "api_error"
