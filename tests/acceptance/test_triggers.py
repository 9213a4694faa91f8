"""Configured triggers, for real: `aw serve` with `AW_PLAN_LABEL=robot-go` (embedded, SQLite).

The trigger is honoured end to end only if the delivery accepted with it is also
routed with it: the ingress parses once with the configured triggers and the job
handler routes that stored event, never the payload re-parsed with the defaults. A label
that is not the deployment's trigger is kept without an event (a repository's own
settings could name it) and routed as nothing.
"""

from __future__ import annotations

import pytest

from agent_workflow.core.model import Phase
from github_emulator import EmulatorConfig
from tests.acceptance.system import BOT, REPO, Processes, World

pytestmark = pytest.mark.slow

CUSTOM = {"AW_PLAN_LABEL": "robot-go"}
HOOK = str(EmulatorConfig().hook_id)  # every delivery of the emulator carries it


async def test_custom_plan_label__robot_go_runs_the_lifecycle__agent_does_nothing(
    embedded: World, procs: Processes, serve_url: str
) -> None:
    """`robot-go` plans, `/approve` delivers one PR, the merge compounds; `agent` is a plain label."""
    world = embedded
    await procs.start_serve("serve", serve_url, CUSTOM)
    plain = await world.open_issue("Labelled with the default word")
    issue = await world.open_issue("Labelled with the configured word")

    ignored = await world.label(plain, "agent")
    planned = await world.label(issue, "robot-go")

    assert ignored.status_code == 202, f"`agent` was not kept under {CUSTOM}\n{procs.log_tails()}"
    assert planned.status_code == 202, f"`robot-go` was not accepted\n{procs.log_tails()}"
    await world.finish_lifecycle(issue, after=Phase.PLAN)  # plan → /approve → PR → merge
    await world.assert_guarantees(issue)
    plan = await world.phase(issue, Phase.PLAN)
    assert plan is not None
    assert plan.trigger_delivery == planned.id

    assert await world.task_id(plain) is None, "labelling `agent` created a task"
    bot_comments = [c for c in await world.admin.comments(REPO, plain) if c.author == BOT]
    assert bot_comments == [], "labelling `agent` made the bot comment"
    assert await world.admin.labels(REPO, plain) == ["agent"]
    kept = await world.store.deliveries.to_route(ignored.id, HOOK)
    assert kept is not None
    assert kept.parsed is None, "`agent` was stored as an event"
    assert kept.routed_at is not None, "`agent` was never routed"
