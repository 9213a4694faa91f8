"""A repository's own triggers, for real (issue 12 item 4): `.github/agent-workflow.yml`
with `triggers.plan_label: robot-go` on the default branch; `aw serve` and two `aw worker`
processes on PostgreSQL and BullMQ, the deployment's plan label left `agent`.

In that repository `robot-go` plans and `agent` does nothing; in a repository whose file
is invalid, the deployment's triggers hold (`agent` plans) and the issue gets one comment
naming the error. The webhook is answered before any settings are read: the
ingress keeps both labels and the handler decides each with its repository's triggers.
"""

from __future__ import annotations

import pytest

from agent_workflow.core.model import Phase
from agent_workflow.core.repo_settings import CONFIG_PATH
from github_emulator import EmulatorConfig
from tests.acceptance.system import BOT, REPO, USER, Processes, World, eventually

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

HOOK = str(EmulatorConfig().hook_id)
OTHER = "acme/gadgets"  # an invalid settings file: the deployment's values hold
INVALID = "triggers:\n  plan_label: robot-go\n  plan_labell: typo\n"
SETTINGS = "triggers:\n  plan_label: robot-go\n  approve_command: /ship it\n"


async def test_repository_names_robot_go__it_plans_there__agent_does_nothing_there_only(
    distributed: World, procs: Processes, serve_url: str
) -> None:
    world = distributed
    await world.admin.put_file(REPO, CONFIG_PATH, SETTINGS, user=USER)
    await world.admin.create_repo(OTHER)
    await world.admin.set_permission(OTHER, USER, "write")
    await world.admin.put_file(OTHER, CONFIG_PATH, INVALID, user=USER)
    await procs.start_serve("serve", serve_url)
    await procs.start_worker("worker-1")
    await procs.start_worker("worker-2")
    plain = await world.open_issue("Labelled with the deployment's word")
    issue = await world.open_issue("Labelled with the repository's word")
    elsewhere = await world.admin.create_issue(OTHER, "No settings here", author=USER)

    ignored = await world.label(plain, "agent")
    planned = await world.label(issue, "robot-go")
    other = (await world.admin.add_label(OTHER, elsewhere, "agent", user=USER)).deliveries

    assert [ignored.status_code, planned.status_code] == [202, 202], procs.log_tails()
    assert [d.status_code for d in other] == [202]
    await world.wait_done(issue, Phase.PLAN)
    # The repository's approve command delivers; the deployment's `/approve` is not one there.
    said = await world.admin.comment(REPO, issue, "/approve", user=USER)
    assert [d.status_code for d in said.deliveries] == [202]
    shipped = await world.admin.comment(REPO, issue, "/ship it", user=USER)
    assert [d.status_code for d in shipped.deliveries] == [202]
    await world.wait_done(issue, Phase.DELIVER)
    await world.assert_guarantees(issue, [Phase.PLAN, Phase.DELIVER])
    deliver = await world.phase(issue, Phase.DELIVER)
    assert deliver is not None
    assert deliver.trigger_delivery == shipped.deliveries[0].id

    async def other_planned() -> bool:
        task = await world.store.tasks.find(OTHER, elsewhere)
        return task is not None

    await eventually(other_planned, what=f"{OTHER}#{elsewhere} planned by `agent`")

    async def said_invalid() -> list[str]:
        comments = await world.admin.comments(OTHER, elsewhere)
        return [c.body for c in comments if c.author == BOT and "is not valid" in c.body]

    async def one_said() -> bool:
        return len(await said_invalid()) == 1

    await eventually(one_said, what=f"one comment on {OTHER}#{elsewhere} naming the error")

    async def all_routed() -> bool:
        rows = [await world.store.deliveries.get(d.id, HOOK) for d in (ignored, *said.deliveries)]
        return all(r is not None and r.routed_at is not None for r in rows)

    await eventually(all_routed, what="the ignored label and `/approve` routed")
    assert await world.task_id(plain) is None, "`agent` created a task where robot-go rules"
    bot_comments = [c for c in await world.admin.comments(REPO, plain) if c.author == BOT]
    assert bot_comments == [], "`agent` made the bot comment where robot-go rules"
    assert len(await world.agent_runs(issue)) == 2  # one plan, one deliver: `/approve` ran none
    [said] = await said_invalid()  # still one, the plan's run done
    assert "plan_labell" in said
