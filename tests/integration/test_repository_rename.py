"""A repository renamed in the middle of a task's lifecycle, over the real webhook path.

GitHub keeps a renamed repository's id and answers its old URLs with 301 (reads) and
307 (other methods). The task is keyed by the id: it is found, and moved to the new
`owner/name`, by the first event that carries the new name; effects begun under the old
name reach the repository through the redirects; effect keys keep the name the task was
created under, so nothing is performed twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from agent_workflow.core.model import LIFECYCLE, Phase, PhaseStatus
from agent_workflow.core.ports import AgentRequest, AgentResult
from agent_workflow.store import Store
from agent_workflow.store.schema import effects, tasks
from agent_workflow.testing.agent import ScriptedAgent
from tests.core.helpers import count_rows
from tests.integration.helpers import eventually
from tests.integration.system import System, running_system
from tests.support.events import BOT, REPO, TRUSTED

NEW = "octo-org/demo-renamed"  # a transfer and a rename at once


@dataclass
class RenamingAgent(ScriptedAgent):
    """Renames the repository (once) while the deliver phase's agent runs."""

    rename: Callable[[], Awaitable[None]] | None = None

    async def run(self, request: AgentRequest) -> AgentResult:
        if request.phase is Phase.DELIVER and self.rename is not None:
            rename, self.rename = self.rename, None
            await rename()
        return await super().run(request)


@pytest.fixture
async def system(store: Store, db_url: str) -> AsyncIterator[System]:
    async with running_system(store, db_url, agent=RenamingAgent()) as running:
        yield running


async def _finished(system: System, repo: str, issue: int, phase: Phase) -> None:
    async def done() -> bool:
        task = await system.store.tasks.find(repo, issue)
        run = None if task is None else await system.store.phases.get(task.id, phase)
        return run is not None and run.status.is_final and run.effects_done

    await eventually(done, what=f"{phase} of {repo}#{issue} to finish with its effects")
    await system.settled()


async def test_rename_while_deliver_runs__the_task_completes_exactly_once(system: System) -> None:
    emu, store = system.emu, system.store
    agent = system.agent
    assert isinstance(agent, RenamingAgent)
    issue = await emu.admin.create_issue(REPO, "Add widgets", body="Please.", author=TRUSTED)
    await emu.admin.add_label(REPO, issue, "agent", user=TRUSTED)
    await _finished(system, REPO, issue, Phase.PLAN)
    task = await store.tasks.find(REPO, issue)
    assert task is not None
    assert task.repo_id is not None

    renamed: list[int] = []

    async def rename() -> None:
        renamed.append((await emu.admin.rename_repo(REPO, NEW)).id)

    agent.rename = rename
    # `/approve` under the old name; the repository moves while the agent works, so the
    # deliver phase's effects (PR, comment, labels) are sent to the old URLs: 307, followed.
    await emu.admin.comment(REPO, issue, "/approve", user=TRUSTED)
    await _finished(system, REPO, issue, Phase.DELIVER)
    assert renamed == [task.repo_id]  # GitHub's id for the repository did not change
    redirected = system.forge.stats.redirects
    assert redirected > 0

    # The merge's webhook names the new repository (same id): the task moves to it.
    [pull] = await emu.admin.pulls(NEW)
    await emu.admin.merge_pull(NEW, pull.number, user=TRUSTED)
    await _finished(system, NEW, issue, Phase.COMPOUND)

    [moved] = await store.tasks.all()
    assert (moved.id, moved.repo, moved.repo_id) == (task.id, NEW, task.repo_id)
    assert moved.pr_number == pull.number
    assert await store.tasks.find(REPO, issue) is None  # the old name is free again
    assert await count_rows(store, tasks) == 1
    runs = await store.phases.for_task(task.id)
    assert {r.phase: r.status for r in runs} == {p: PhaseStatus.COMPLETE for p in LIFECYCLE}
    assert [c.phase for c in agent.calls] == list(LIFECYCLE)  # one agent run per phase
    assert [c.resume for c in agent.calls] == [False] * 3

    # Every effect once: one PR, three comments, each label added once.
    assert len(await emu.admin.pulls(NEW)) == 1
    comments = [c.body for c in await emu.admin.comments(NEW, issue) if c.author == BOT]
    assert len(comments) == 3  # plan, PR link, lessons
    assert comments[2].startswith("## What we learned")
    assert sorted(await emu.admin.labels(NEW, issue)) == [
        "agent",
        "agent-delivered",
        "agent-done",
        "agent-planned",
    ]
    async with store.engine.connect() as conn:
        keys = [row.key for row in await conn.execute(effects.select())]
    assert len(keys) == len(set(keys)) == await count_rows(store, effects)
    assert all(key.startswith(f"{REPO}#{issue}/") for key in keys)  # keys never moved
    assert system.forge.stats.uncertain == 0
    assert system.forge.stats.redirects == redirected  # after the move: the new name only
