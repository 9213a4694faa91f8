"""A small world for the dashboard's HTTP tests: tasks driven through the real core.

Events go into the inbox and are routed by the real job handler (the memory forge
stands in for GitHub, the scripted agent for Claude), so every row the dashboard
reads was written by the code that writes it in production.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from agent_workflow.config import load_settings
from agent_workflow.core.model import Event, Intent
from agent_workflow.core.repo_settings import NoRepoConfigs, RepoConfigs
from agent_workflow.core.wiring import Core
from agent_workflow.dashboard.app import create_dashboard
from agent_workflow.ingress.repo_triggers import RepoTriggers
from agent_workflow.service.handler import JobHandler
from agent_workflow.service.jobs import route_job
from agent_workflow.service.runtime import triggers_from
from agent_workflow.store import Store
from agent_workflow.testing.agent import ScriptedAgent
from agent_workflow.testing.forge import MemoryForge
from tests.conftest import FakeClock
from tests.core.helpers import make_core
from tests.support.events import REPO, TRUSTED, event

TOKEN = "dashboard-test-token-0123456789"
HOSTILE_TITLE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
OTHER_REPO = "octo/other"
BASE = "http://dashboard.test"


@dataclass
class World:
    """The store, the core that wrote it, and a client of the dashboard over it."""

    store: Store
    clock: FakeClock
    core: Core
    forge: MemoryForge
    handler: JobHandler
    client: httpx.AsyncClient
    routed: list[str] = field(default_factory=list)  # delivery ids the dashboard enqueued

    async def deliver(self, ev: Event) -> None:
        """Store `ev` in the inbox as the ingress would and route it as a job would."""
        await self.store.deliveries.record(
            delivery_id=ev.delivery_id,
            hook_id="1",
            event="issue_comment",
            action="created",
            payload={"test": True},
            parsed=ev,
            now=self.clock(),
        )
        await self.route(ev.delivery_id, "1")

    async def route(self, delivery_id: str, hook_id: str) -> None:
        """What the queue does with a route job."""
        _job_id, data = route_job(delivery_id, hook_id)
        await self.handler(data)

    async def login(self) -> None:
        """Log the client in through the form (the session cookie is kept)."""
        answer = await self.client.post(
            "/dashboard/login", data={"token": TOKEN, "next": "/dashboard/"}, headers=ORIGIN
        )
        assert answer.status_code == 303, answer.text


ORIGIN = {"origin": BASE}
HTML = {"accept": "text/html"}


@asynccontextmanager
async def dashboard_world(
    store: Store,
    clock: FakeClock,
    *,
    actor: str = TRUSTED,
    configs: RepoConfigs | None = None,
    progress_interval_s: float | None = None,
) -> AsyncIterator[World]:
    """The world with three tasks: #7 delivered (PR open), #8 with a hostile title whose
    plan is blocked, #9 in another repository with its plan complete."""
    forge = MemoryForge()
    core = make_core(
        store, clock, forge=forge, agent=ScriptedAgent(), progress_interval_s=progress_interval_s
    )
    settings = load_settings(webhook_secret="x", agent="scripted")
    handler = JobHandler(
        store,
        core.router,
        clock,
        triggers=RepoTriggers(triggers_from(settings), configs or NoRepoConfigs()),
        max_route_attempts=3,
    )
    routed: list[str] = []

    async def enqueue(delivery_id: str, hook_id: str) -> None:
        routed.append(delivery_id)
        _job_id, data = route_job(delivery_id, hook_id)
        await handler(data)

    dashboard = create_dashboard(
        store,
        enqueue,
        token=TOKEN,
        actor=actor,
        github_api_url="https://api.github.com",
        clock=clock,
        failure_delay_s=0.0,
    )
    app = Starlette(routes=[Mount("/dashboard", dashboard)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        world = World(store, clock, core, forge, handler, client, routed)
        await world.deliver(event(Intent.START_PLAN, 7, title="Add widgets"))
        clock.advance(5)
        await world.deliver(event(Intent.APPROVE, 7))
        clock.advance(5)
        await world.deliver(
            event(Intent.START_PLAN, 8, title=HOSTILE_TITLE, body="agent-test: block plan")
        )
        clock.advance(5)
        await world.deliver(event(Intent.START_PLAN, 9, repo=OTHER_REPO, title="Elsewhere"))
        yield world


__all__ = ["HOSTILE_TITLE", "HTML", "ORIGIN", "OTHER_REPO", "REPO", "TOKEN", "World"]
