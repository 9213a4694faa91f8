"""Tokens and cost: what the model proxy counts equals what it metered into the database.

A real `ModelProxy` (loopback HTTP) in front of the fake Messages API; requests are sent
as the CLI sends them, with a run's token, streamed and not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from agent_workflow.agents.model_proxy import ModelCredential, ModelProxy
from agent_workflow.core.model import Phase, TaskInfo
from agent_workflow.store import Store
from agent_workflow.store.schema import model_usage
from tests.support.fake_anthropic import FakeAnthropic, Script
from tests.support.fake_anthropic.script import Reply
from tests.telemetry.helpers import delta, scrape

MODEL = "claude-sonnet-4-5-20250929"


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    """The fake Messages API; every request gets the same reply and usage."""
    async with FakeAnthropic(Script(Reply(text="ok", input_tokens=1200, output_tokens=300))) as f:
        yield f


async def test_proxy__tokens_and_cost_counted_as_metered(fake: FakeAnthropic, store: Store) -> None:
    task = await store.tasks.ensure(TaskInfo("octo/demo", 7, "Count tokens"), 1.0)
    proxy = ModelProxy(
        upstream_url=fake.base_url,
        credential=ModelCredential(api_key="sk-ant-test"),
        meter=store.usage,
        task_budget_usd=None,
    )
    before = await scrape()
    async with (
        proxy,
        proxy.grant(task.id, Phase.DELIVER, 1) as grant,
        httpx.AsyncClient(base_url=proxy.url) as client,
    ):
        for stream in (True, False):
            answer = await client.post(
                "/v1/messages",
                headers={"x-api-key": grant.token, "anthropic-version": "2023-06-01"},
                json={
                    "model": MODEL,
                    "max_tokens": 100,
                    "stream": stream,
                    "messages": [{"role": "user", "content": "hello"}],
                },
            )
            assert answer.status_code == 200, answer.text
    after = await scrape()

    async with store.engine.connect() as conn:
        row = (
            await conn.execute(
                select(
                    func.count(),
                    func.sum(model_usage.c.input_tokens),
                    func.sum(model_usage.c.output_tokens),
                    func.sum(model_usage.c.cost_usd),
                ).where(model_usage.c.task_id == task.id)
            )
        ).one()
    rows, metered_in, metered_out, metered_cost = row
    assert (rows, metered_in, metered_out) == (2, 2400, 600)  # counted once per response
    tokens = "aw_model_tokens_total"
    labels = {"phase": "deliver", "model": "sonnet"}
    assert delta(after, before, tokens, kind="input", **labels) == metered_in
    assert delta(after, before, tokens, kind="output", **labels) == metered_out
    assert delta(after, before, "aw_model_cost_usd_total", **labels) == pytest.approx(metered_cost)
