"""`installation` / `installation_repositories` events: a suspended (or deleted)
installation starts nothing and says why in `aw status`; its tasks are held (the sweeper
does not retry them), unsuspending releases them; a task follows the installation its
latest event came through."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from agent_workflow.core.model import Intent, Phase, PhaseStatus
from agent_workflow.core.ports import AgentRequest, AgentResult, Outcome
from agent_workflow.core.routed import Action
from agent_workflow.ingress.events import parse
from agent_workflow.ingress.inbox import store_delivery
from agent_workflow.status import collect_installations, collect_status
from agent_workflow.store import Store
from agent_workflow.store.schema import tasks
from agent_workflow.testing.agent import ScriptedAgent
from tests.conftest import FakeClock
from tests.core.helpers import count_rows, make_core
from tests.ingress.helpers import TRIGGERS
from tests.support.events import REPO, event

INSTALLATION = 31


def _installation_payload(action: str, installation: int = INSTALLATION) -> dict[str, Any]:
    return {
        "action": action,
        "installation": {"id": installation, "account": {"login": "octo"}},
        "sender": {"login": "octo", "type": "User"},
    }


async def _deliver(store: Store, clock: FakeClock, name: str, payload: dict[str, Any]) -> str:
    stored = await store_delivery(
        store,
        TRIGGERS,
        event=name,
        delivery_id=f"d-{name}-{payload['action']}-{clock()}",
        hook_id="app",
        payload=payload,
        now=clock(),
    )
    return str(getattr(stored, "reason", stored))


async def test_suspended_installation__its_event_starts_nothing_and_status_says_so(
    store: Store, clock: FakeClock
) -> None:
    core = make_core(store, clock)
    await _deliver(store, clock, "installation", _installation_payload("suspend"))
    labeled = replace(event(Intent.START_PLAN, 7), installation_id=INSTALLATION)
    routed = await core.router.route(labeled)
    assert routed.action is Action.IGNORED
    assert routed.reason == f"installation {INSTALLATION} is suspended"
    assert await count_rows(store, tasks) == 0
    assert await collect_installations(store) == [
        {"installation_id": INSTALLATION, "account": "octo", "state": "suspended", "since": clock()}
    ]
    # Another installation is not affected.
    other = replace(event(Intent.START_PLAN, 8), installation_id=INSTALLATION + 1)
    assert (await core.router.route(other)).action is Action.RAN


async def test_suspend_holds_tasks__not_retried__unsuspend_resumes(
    store: Store, clock: FakeClock
) -> None:
    core = make_core(store, clock)
    task = await store.tasks.ensure(_info(), clock())
    await store.phases.ensure(task.id, Phase.PLAN, "d-1", clock())
    clock.advance(120)
    assert [r.task_id for r in await store.phases.needing_work(clock(), 30)] == [task.id]

    said = await _deliver(store, clock, "installation", _installation_payload("suspend"))
    assert said == f"installation {INSTALLATION} is suspended: 1 task(s) held"
    assert await store.phases.needing_work(clock(), 30) == []  # nothing retried in a loop
    assert (await core.router.resume(task.id, Phase.PLAN)).action is Action.NOOP
    [row] = await collect_status(store, clock(), None)
    assert row["held"] == f"installation {INSTALLATION} is suspended"

    await _deliver(store, clock, "installation", _installation_payload("unsuspend"))
    assert [r.task_id for r in await store.phases.needing_work(clock(), 30)] == [task.id]
    assert (await core.router.resume(task.id, Phase.PLAN)).action is Action.RAN
    assert await collect_installations(store) == []


async def test_repository_removed__its_tasks_held__added_back_released(
    store: Store, clock: FakeClock
) -> None:
    task = await store.tasks.ensure(_info(), clock())
    payload = _installation_payload("removed")
    payload["repositories_removed"] = [{"id": 4242, "full_name": REPO}]
    await _deliver(store, clock, "installation_repositories", payload)
    held = await store.tasks.get(task.id)
    assert held is not None
    assert held.held_reason == f"repository removed from installation {INSTALLATION}"
    payload = _installation_payload("added")
    payload["repositories_added"] = [{"id": 4242, "full_name": REPO}]
    await _deliver(store, clock, "installation_repositories", payload)
    released = await store.tasks.get(task.id)
    assert released is not None
    assert released.held_reason is None


async def test_task__follows_the_installation_its_latest_event_names(
    store: Store, clock: FakeClock
) -> None:
    core = make_core(store, clock)
    await core.router.route(replace(event(Intent.START_PLAN, 7), installation_id=1))
    await core.router.route(replace(event(Intent.START_PLAN, 7), installation_id=2))
    task = await store.tasks.find(REPO, 7)
    assert task is not None
    assert task.installation_id == 2
    assert await store.tasks.installation_of(REPO) == 2


def test_parse__installation_id_from_the_payload() -> None:
    payload = {
        "action": "labeled",
        "label": {"name": "agent"},
        "issue": {"number": 3, "title": "t", "body": ""},
        "repository": {"id": 9, "full_name": REPO, "clone_url": "x", "default_branch": "main"},
        "sender": {"login": "alice", "type": "User"},
        "installation": {"id": 77},
    }
    parsed = parse("issues", payload, "d-1", TRIGGERS)
    assert getattr(parsed, "installation_id", None) == 77


def _info() -> Any:
    from tests.support.events import task_info

    return replace(task_info(7), repo_id=4242, installation_id=INSTALLATION)


class SuspendedMidRun(ScriptedAgent):
    """An agent whose installation is suspended while it runs: the suspend event holds the
    task, and the run ends in an error (its push was refused a token)."""

    def __init__(self, store: Store, clock: FakeClock) -> None:
        super().__init__()
        self.store, self.clock, self.suspend = store, clock, True

    async def run(self, request: AgentRequest) -> AgentResult:
        result = await super().run(request)
        if not self.suspend:
            return result
        await self.store.tasks.hold(
            f"installation {INSTALLATION} is suspended",
            self.clock(),
            installation_id=INSTALLATION,
        )
        return replace(result, outcome=Outcome.ERROR, text="", reason="push refused a token")


async def test_suspended_while_the_agent_runs__held_not_retried__unsuspend_finishes_it(
    store: Store, clock: FakeClock
) -> None:
    """The run that errored is not followed by more attempts (that would spend the phase's
    failures on an installation that is away): the phase waits, pending, and the task says
    why; once released the next attempt completes it."""
    agent = SuspendedMidRun(store, clock)
    core = make_core(store, clock, agent=agent)
    task = await store.tasks.ensure(_info(), clock())

    await core.router.route(replace(event(Intent.START_PLAN, 7), installation_id=INSTALLATION))

    assert len(agent.calls) == 1
    run = await store.phases.get(task.id, Phase.PLAN)
    assert run is not None
    assert run.status is PhaseStatus.PENDING
    assert (await core.router.resume(task.id, Phase.PLAN)).action is Action.NOOP
    assert len(agent.calls) == 1

    agent.suspend = False
    await _deliver(store, clock, "installation", _installation_payload("unsuspend"))
    clock.advance(120)
    assert (await core.router.resume(task.id, Phase.PLAN)).action is Action.RAN
    done = await store.phases.get(task.id, Phase.PLAN)
    assert done is not None
    assert done.status is PhaseStatus.COMPLETE
    assert len(agent.calls) == 2
