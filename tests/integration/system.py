"""A served agent-workflow (`aw serve`, embedded) wired to a GitHub emulator that sends it webhooks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agent_workflow.config import load_settings
from agent_workflow.core.model import Phase
from agent_workflow.forge.github import GitHubForge
from agent_workflow.service.serve import serve
from agent_workflow.store import Store
from agent_workflow.testing.agent import ScriptedAgent
from github_emulator import EmulatorServer
from tests.integration.helpers import (
    SECRET,
    TOKEN,
    eventually,
    free_port,
    github_forge,
    setup_world,
)
from tests.support.events import BOT, REPO


@dataclass
class System:
    """A served agent-workflow wired to an emulator that sends it webhooks."""

    emu: EmulatorServer
    forge: GitHubForge
    agent: ScriptedAgent
    store: Store  # a second connection to the served database, for assertions

    async def settled(self) -> None:
        """Wait until every webhook was answered and every stored delivery routed."""
        await self.emu.admin.wait_webhooks()

        async def all_routed() -> bool:
            return not await self.store.deliveries.unrouted(received_before=float("inf"))

        await eventually(all_routed, what="every stored delivery to be routed")

    async def phase_settled(self, issue: int, phase: Phase) -> None:
        """Wait until `phase` of the issue's task is final with all its effects performed."""

        async def done() -> bool:
            task = await self.store.tasks.find(REPO, issue)
            run = None if task is None else await self.store.phases.get(task.id, phase)
            return run is not None and run.status.is_final and run.effects_done

        await eventually(done, what=f"{phase} of #{issue} to finish with its effects")
        await self.settled()

    async def bot_comments(self, issue: int) -> list[str]:
        """Bodies of the bot's comments on the issue, oldest first."""
        return [c.body for c in await self.emu.admin.comments(REPO, issue) if c.author == BOT]


@contextlib.asynccontextmanager
async def running_system(
    store: Store,
    db_url: str,
    *,
    agent: ScriptedAgent | None = None,
    before_start: Callable[[EmulatorServer], Awaitable[None]] | None = None,
    **settings: Any,
) -> AsyncIterator[System]:
    """`serve()` on a free port over the test database, the emulator hooked to it.

    `before_start` runs once the emulator is set up and before `serve()` starts (to leave
    work behind as a dead process would); `settings` override the AW settings.
    """
    port = free_port()
    hook_url = f"http://127.0.0.1:{port}/webhooks/github"
    async with EmulatorServer(token=TOKEN, webhook_url=hook_url, webhook_secret=SECRET) as emu:
        await setup_world(emu)
        if before_start is not None:
            await before_start(emu)
        aw_settings = load_settings(
            database_url=db_url,
            github_api_url=emu.url,
            github_token=TOKEN,
            webhook_secret=SECRET,
            agent="scripted",
            bot_login=BOT,
            host="127.0.0.1",
            port=port,
            owner="integration-worker",
            # Live progress off unless a test asks: these scenarios count each phase's own
            # REST calls and comments exactly (tests/core/test_progress.py counts progress).
            **{"progress_interval_s": 0, **settings},
        )
        async with github_forge(emu) as forge:
            agent = agent or ScriptedAgent()
            started, stopping = asyncio.Event(), asyncio.Event()
            served = asyncio.create_task(
                serve(aw_settings, forge=forge, agent=agent, started=started, stop=stopping)
            )
            ready = asyncio.create_task(started.wait())
            await asyncio.wait({served, ready}, return_when=asyncio.FIRST_COMPLETED)
            if served.done():
                ready.cancel()
                await served  # it failed to start: raise why
            try:
                yield System(emu, forge, agent, store)
            finally:
                await stop(served, stopping)


async def stop(served: asyncio.Task[Any], stopping: asyncio.Event) -> None:
    """Shut `serve()` down the way SIGTERM does; cancel only if that hangs."""
    stopping.set()
    try:
        await asyncio.wait_for(asyncio.shield(served), timeout=10)
    except TimeoutError:
        served.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await served
        raise
