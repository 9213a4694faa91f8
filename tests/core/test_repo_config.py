"""Per-repository settings (issue 12 item 4): `.github/agent-workflow.yml` on the default
branch narrows the deployment's limits; an invalid file is said once and ignored.

Every scenario runs four ways: the memory twin and the GitHub emulator, on SQLite and
PostgreSQL (`world` x `store`).
"""

from __future__ import annotations

import pytest

from agent_workflow.core.model import Intent, Phase
from agent_workflow.core.repo_settings import CONFIG_PATH
from agent_workflow.forge.repo_config import ForgeRepoConfigs
from agent_workflow.store import Store
from agent_workflow.testing.agent import ScriptedAgent
from tests.conftest import FakeClock
from tests.core.helpers import make_core
from tests.core.worlds import EmulatorWorld, MemoryWorld, World
from tests.support.events import BOT, REPO, TRUSTED, event

CONTENTS = "GET /repos/{owner}/{repo}/contents/{path}"
BRANCH = "main"


async def _put(world: World, text: str | None) -> None:
    """Commit the settings file on the default branch (a push naming it)."""
    if isinstance(world, MemoryWorld):
        world.memory.set_file(REPO, BRANCH, CONFIG_PATH, text)
    else:
        assert isinstance(world, EmulatorWorld)
        await world.emu.admin.put_file(REPO, CONFIG_PATH, text, user=TRUSTED)


async def _deliver(store: Store, clock: FakeClock, world: World, configs: ForgeRepoConfigs):  # type: ignore[no-untyped-def]
    agent = ScriptedAgent()
    core = make_core(store, clock, forge=world.forge, agent=agent, repo_configs=configs)
    await core.router.route(event(Intent.START_PLAN, world.issue))
    await core.router.route(event(Intent.APPROVE, world.issue))
    return agent


def _request(agent: ScriptedAgent, phase: Phase):  # type: ignore[no-untyped-def]
    return next(c for c in agent.calls if c.phase is phase)


async def test_config__lowers_deliver_limits__honoured_in_the_agent_request(
    store: Store, clock: FakeClock, world: World
) -> None:
    await _put(
        world,
        "limits:\n  deliver: {max_turns: 50, max_budget_usd: 4}\n  task_budget_usd: 6\n"
        "agent:\n  model: claude-haiku\n  allowed_domains: [pypi.org, evil.example]\n",
    )
    agent = await _deliver(store, clock, world, ForgeRepoConfigs(world.forge))
    deliver = _request(agent, Phase.DELIVER)
    assert (deliver.max_turns, deliver.max_budget_usd) == (50, 4.0)
    assert deliver.model == "claude-haiku"
    assert deliver.allowed_domains == ("pypi.org",)  # narrowed to the deployment's
    plan = _request(agent, Phase.PLAN)
    assert (plan.max_turns, plan.max_budget_usd) == (60, 3.0)  # untouched: the deployment's


async def test_config__raises_limits_above_the_cap__capped(
    store: Store, clock: FakeClock, world: World
) -> None:
    await _put(world, "limits:\n  deliver: {max_turns: 9999, max_budget_usd: 500}\n")
    agent = await _deliver(store, clock, world, ForgeRepoConfigs(world.forge))
    deliver = _request(agent, Phase.DELIVER)
    assert (deliver.max_turns, deliver.max_budget_usd) == (200, 15.0)


async def test_config__invalid__one_comment_naming_the_error_and_the_deployment_applies(
    store: Store, clock: FakeClock, world: World
) -> None:
    await _put(world, "limits:\n  deliver: {max_turns: 10, max_turnz: 3}\n")
    agent = await _deliver(store, clock, world, ForgeRepoConfigs(world.forge))
    deliver = _request(agent, Phase.DELIVER)
    assert (deliver.max_turns, deliver.max_budget_usd) == (200, 15.0)
    said = [
        c.body
        for c in await world.comments(world.issue)
        if c.author == BOT and "is not valid" in c.body
    ]
    assert len(said) == 1  # plan and deliver both read it: one comment per file version
    assert "max_turnz" in said[0]
    assert "Extra inputs are not permitted" in said[0]


@pytest.mark.parametrize("world", ["emulator"], indirect=True)
async def test_config__unchanged__second_read_is_a_304_and_a_push_rereads(
    world: World,
) -> None:
    assert isinstance(world, EmulatorWorld)
    await _put(world, "pull_requests: {draft: true}\n")
    configs = ForgeRepoConfigs(world.forge)
    await world.reset_calls()

    first = await configs.for_repo(REPO, BRANCH)
    second = await configs.for_repo(REPO, BRANCH)
    counters = await world.emu.admin.counters()
    assert first.settings.draft is True
    assert second == first
    assert counters.requests[CONTENTS] == 2
    assert counters.not_modified == {CONTENTS: 1}

    # A push to the default branch that changes the file: the cache entry goes, re-read.
    await world.emu.admin.put_file(REPO, CONFIG_PATH, "rounds: {max_revise: 1}\n", user=TRUSTED)
    payload = {
        "ref": f"refs/heads/{BRANCH}",
        "repository": {"full_name": REPO, "default_branch": BRANCH},
        "commits": [{"added": [], "modified": [CONFIG_PATH], "removed": []}],
    }
    assert configs.invalidate_from_push(payload)
    third = await configs.for_repo(REPO, BRANCH)
    counters = await world.emu.admin.counters()
    assert third.settings.max_revise == 1
    assert third.settings.draft is None
    assert counters.requests[CONTENTS] == 3
    assert counters.not_modified == {CONTENTS: 1}  # the third was a full read


async def test_config__absent_then_a_push_adds_it__reread_at_once(world: World) -> None:
    """An absent file is remembered (a 404 has no ETag to revalidate with); the push that
    adds it drops that memory, so the next read sees the file."""
    configs = ForgeRepoConfigs(world.forge)
    assert (await configs.for_repo(REPO, BRANCH)).version == ""
    await _put(world, "rounds: {max_repair: 1}\n")
    payload = {
        "ref": f"refs/heads/{BRANCH}",
        "repository": {"full_name": REPO, "default_branch": BRANCH},
        "commits": [{"added": [CONFIG_PATH], "modified": [], "removed": []}],
    }
    assert configs.invalidate_from_push(payload)
    assert (await configs.for_repo(REPO, BRANCH)).settings.max_repair == 1


async def test_config__push_elsewhere__not_invalidated(world: World) -> None:
    configs = ForgeRepoConfigs(world.forge)
    other = {
        "ref": "refs/heads/feature",
        "repository": {"full_name": REPO, "default_branch": BRANCH},
        "commits": [{"added": [], "modified": [CONFIG_PATH], "removed": []}],
    }
    untouched = {
        "ref": f"refs/heads/{BRANCH}",
        "repository": {"full_name": REPO, "default_branch": BRANCH},
        "commits": [{"added": ["README.md"], "modified": [], "removed": []}],
    }
    assert not configs.invalidate_from_push(other)
    assert not configs.invalidate_from_push(untouched)
