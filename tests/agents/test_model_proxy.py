"""The model-credential proxy (issue 10, item 1): the agent holds no model key; the proxy
meters every response into the database as it streams and enforces the task's budget.

The real CLI runs through a real `ModelProxy` (loopback HTTP) to the fake Messages API;
usage lands in the real store (SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_workflow.agents.claude import ClaudeAgent, ClaudeConfig
from agent_workflow.agents.model_metering import price_of
from agent_workflow.agents.model_proxy import ModelCredential, ModelProxy
from agent_workflow.core.model import Phase, TaskInfo
from agent_workflow.core.ports import AgentRequest, Outcome
from agent_workflow.store import Store
from agent_workflow.workspace import Workspace
from tests.agents.conftest import REPO, SESSION
from tests.support.fake_anthropic import FakeAnthropic, Script, call, say, steps

REAL_KEY = "sk-ant-real-deployment-key-0d1e2f"
ENV_DUMP = "env; echo DUMPED"

# The fake's usage per reply, and what the proxy should price it at.
IN_TOKENS, OUT_TOKENS = 40_000, 2_000


@pytest.fixture
async def task_id(store: Store) -> int:
    """A task row the usage is billed to."""
    task = await store.tasks.ensure(TaskInfo(REPO, 7, "Add a perimeter function"), 1.0)
    return task.id


@pytest.fixture
def open_proxy(fake: FakeAnthropic, store: Store) -> Callable[..., ModelProxy]:
    """An unstarted proxy (`async with` it) in front of the fake, with the deployment's key."""

    def build(task_budget_usd: float | None = None) -> ModelProxy:
        return ModelProxy(
            upstream_url=fake.base_url,
            credential=ModelCredential(api_key=REAL_KEY),
            meter=store.usage,
            task_budget_usd=task_budget_usd,
        )

    return build


@pytest.fixture
def proxied_agent(
    workspace: Workspace, fake: FakeAnthropic, tmp_path: Path
) -> Callable[[ModelProxy], ClaudeAgent]:
    """A ClaudeAgent whose config names no model URL or key: only the proxy's grant."""

    def build(proxy: ModelProxy, **overrides: Any) -> ClaudeAgent:
        env = {
            k: v
            for k, v in fake.cli_env(tmp_path / "claude-config").items()
            if k not in ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY")
        }
        config = dataclasses.replace(ClaudeConfig(env=env), **overrides)
        return ClaudeAgent(workspace, config, proxy=proxy)

    return build


def _for_task(request: AgentRequest, task_id: int) -> AgentRequest:
    return dataclasses.replace(request, task_id=task_id)


async def _usage_rows(store: Store, task_id: int) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from agent_workflow.store.schema import model_usage

    async with store.db.connect() as conn:
        result = await conn.execute(select(model_usage).where(model_usage.c.task_id == task_id))
        return [dict(r) for r in result.mappings()]


def _cost(input_tokens: int, output_tokens: int, model: str) -> float:
    price = price_of(model)
    return (input_tokens * price.input + output_tokens * price.output) / 1_000_000


async def test_agent__reaches_the_model_only_through_the_proxy_with_a_run_token(
    fake: FakeAnthropic,
    open_proxy: Callable[..., ModelProxy],
    proxied_agent: Callable[..., ClaudeAgent],
    make_request: Callable[..., AgentRequest],
    task_id: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The worker's environment holds the real key, as a deployment's does.
    monkeypatch.setenv("ANTHROPIC_API_KEY", REAL_KEY)
    fake.script = Script().main(
        steps(
            call("Bash", {"command": ENV_DUMP, "description": "env"}),
            call("Write", {"file_path": "NOTES.md", "content": "notes\n"}),
            say("Done."),
        )
    )
    async with open_proxy() as proxy:
        result = await proxied_agent(proxy).run(_for_task(make_request(Phase.DELIVER), task_id))
        assert result.outcome is Outcome.SUCCESS, result.reason
    requests = [r for r in fake.recorder.all() if r.is_messages]
    assert requests, "the CLI reached the model"
    # Upstream saw the deployment's key; the agent (the env dump it sent back) never did.
    assert all(r.headers.get("x-api-key") == REAL_KEY for r in requests)
    dumped = [
        result.content
        for conv in fake.recorder.main(SESSION)
        for result in conv.tool_results
        if "DUMPED" in result.content
    ]
    assert dumped, "the Bash call's result reached the model"
    assert all(REAL_KEY not in text for text in dumped)
    assert any("ANTHROPIC_API_KEY=aw-run-" in text for text in dumped)  # all it holds


async def test_proxy__refuses_a_token_that_is_not_a_live_run(
    open_proxy: Callable[..., ModelProxy], task_id: int, fake: FakeAnthropic
) -> None:
    async with open_proxy() as proxy, httpx.AsyncClient(base_url=proxy.url) as client:
        async with proxy.grant(task_id, Phase.PLAN, 1) as grant:
            token = grant.token
        for key in (REAL_KEY, token, ""):
            answer = await client.post("/v1/messages", headers={"x-api-key": key}, json={})
            assert answer.status_code == 401
            assert answer.json()["error"]["type"] == "authentication_error"
    assert not fake.recorder.all()


async def test_proxy__meters_each_response_into_the_store(
    fake: FakeAnthropic,
    open_proxy: Callable[..., ModelProxy],
    proxied_agent: Callable[..., ClaudeAgent],
    make_request: Callable[..., AgentRequest],
    task_id: int,
    store: Store,
) -> None:
    fake.script = Script().main(
        steps(
            call("Read", {"file_path": "README.md"}, input_tokens=IN_TOKENS, output_tokens=10),
            say("The plan.", input_tokens=IN_TOKENS, output_tokens=OUT_TOKENS),
        )
    )
    async with open_proxy() as proxy:
        result = await proxied_agent(proxy).run(_for_task(make_request(Phase.PLAN), task_id))
    assert result.outcome is Outcome.SUCCESS, result.reason
    rows = await _usage_rows(store, task_id)
    answered = [r for r in fake.recorder.all() if r.is_messages and r.reply is not None]
    assert len(rows) == len(answered)  # one row per response, however many writes
    expected = sum(
        _cost(r.reply.input_tokens, r.reply.output_tokens, r.body.get("model", ""))
        for r in answered
        if r.reply is not None and isinstance(r.body, dict)
    )
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(expected)
    assert await store.usage.task_spent(task_id) == pytest.approx(expected)


async def test_proxy__a_killed_runs_spending_is_counted(
    fake: FakeAnthropic,
    open_proxy: Callable[..., ModelProxy],
    proxied_agent: Callable[..., ClaudeAgent],
    make_request: Callable[..., AgentRequest],
    task_id: int,
    store: Store,
) -> None:
    # The model starts answering (message_start carries the input usage), then stalls.
    fake.script = Script().main(steps(say("never", input_tokens=IN_TOKENS, delay_s=60)))
    async with open_proxy() as proxy:
        run = asyncio.create_task(
            proxied_agent(proxy).run(_for_task(make_request(Phase.PLAN), task_id))
        )
        await fake.wait_for(lambda rec: any(r.is_messages and r.reply for r in rec.all()))
        for _ in range(200):  # the proxy writes as soon as message_start passes it
            if await _usage_rows(store, task_id):
                break
            await asyncio.sleep(0.05)
        # Counted while the response is still streaming: a worker SIGKILLed now (proxy
        # and all) has already billed it.
        assert await store.usage.task_spent(task_id) > 0
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
    rows = await _usage_rows(store, task_id)
    assert len(rows) == 1
    assert rows[0]["input_tokens"] == IN_TOKENS
    # Nothing was reported by the killed run, yet the task's spending counts it.
    assert await store.usage.task_spent(task_id) == pytest.approx(rows[0]["cost_usd"])
    assert rows[0]["cost_usd"] > 0


async def test_proxy__enforces_the_task_budget_and_the_phase_blocks_naming_it(
    fake: FakeAnthropic,
    open_proxy: Callable[..., ModelProxy],
    proxied_agent: Callable[..., ClaudeAgent],
    make_request: Callable[..., AgentRequest],
    task_id: int,
    store: Store,
) -> None:
    # Each answer costs more than the whole task budget; the CLI's own per-run limit is
    # lifted so only the proxy can stop it.
    fake.script = Script().main(
        steps(
            call("Read", {"file_path": "README.md"}, input_tokens=IN_TOKENS),
            call("Read", {"file_path": "README.md"}, input_tokens=IN_TOKENS),
            say("Done.", input_tokens=IN_TOKENS),
        )
    )
    async with open_proxy(task_budget_usd=0.05) as proxy:
        result = await proxied_agent(proxy).run(_for_task(make_request(Phase.PLAN), task_id))
    assert result.outcome is Outcome.BLOCKED
    assert "task budget of $0.05 reached" in result.reason
    assert len(fake.recorder.main(SESSION)) == 1  # the second turn never left the proxy
    assert await store.usage.task_spent(task_id) >= 0.05
