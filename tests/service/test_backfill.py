"""Backfill (issue 12 §2): what GitHub's hook-deliveries log holds and the inbox lacks is
ingested through the webhook's path, bounded by age and count per pass; the adapter
follows GitHub's cursor pagination; reconciliation routes labelled issues without a task.

A twin of GitHub's log (`FakeLog`) records what was asked of it; the store is real
(SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from agent_workflow.core.errors import ForgeError
from agent_workflow.core.model import Intent
from agent_workflow.core.ports import HookDelivery, HookRequest, LabelActor
from agent_workflow.core.repo_settings import NoRepoConfigs, RepoConfig, RepoConfigs
from agent_workflow.forge.auth import AppAuth
from agent_workflow.forge.github import GitHubForge
from agent_workflow.forge.http import GitHubHttp
from agent_workflow.forge.policy import RequestPolicy
from agent_workflow.forge.repo_config import parse_config
from agent_workflow.ingress.events import Triggers
from agent_workflow.ingress.repo_triggers import RepoTriggers
from agent_workflow.service.backfill import (
    Backfill,
    BackfillCounts,
    ReconcileCounts,
    reconcile_delivery_id,
)
from agent_workflow.store import Store
from tests.conftest import FakeClock
from tests.service.test_poison import RecordingQueue

REPO = "octo/demo"
HOOK = (REPO, 42)
TRIGGERS = Triggers(
    "agent", "agent-approved", "/agent plan", "/approve", "/retry", "/agent", "/agent fix ci"
)
DAY = 86_400.0


def labeled(issue: int, login: str = "alice") -> dict[str, Any]:
    return {
        "action": "labeled",
        "issue": {"number": issue, "title": f"#{issue}", "body": ""},
        "label": {"name": "agent"},
        "repository": {"id": 9, "full_name": REPO, "clone_url": "/tmp/x"},
        "sender": {"login": login, "type": "User"},
    }


class FakeLog:
    """GitHub's delivery log for one hook, newest first; counts what was read."""

    def __init__(self) -> None:
        self.attempts: list[HookDelivery] = []  # oldest first, as appended
        self.payloads: dict[int, dict[str, Any]] = {}
        self.listed = 0  # attempts handed out by `hook_deliveries`
        self.fetched: list[int] = []
        self.issues: list[dict[str, Any]] = []
        self.actors: dict[int, LabelActor] = {}
        self.labels_asked: list[str] = []

    def add(self, guid: str, at: float, status: int, payload: dict[str, Any]) -> None:
        attempt = HookDelivery(len(self.attempts) + 1, guid, at, status, "issues")
        self.attempts.append(attempt)
        self.payloads[attempt.id] = payload

    async def hook_deliveries(self, hook: tuple[str, int] | None) -> AsyncIterator[HookDelivery]:
        for attempt in reversed(self.attempts):
            self.listed += 1
            yield attempt

    async def hook_delivery(self, hook: tuple[str, int] | None, delivery_id: int) -> HookRequest:
        self.fetched.append(delivery_id)
        guid = self.attempts[delivery_id - 1].guid
        headers = {"X-GitHub-Event": "issues", "X-GitHub-Delivery": guid, "X-GitHub-Hook-ID": "42"}
        return HookRequest(headers, self.payloads[delivery_id])

    async def app_repositories(self) -> list[dict[str, Any]]:
        return []

    async def repository(self, repo: str) -> dict[str, Any]:
        return {"id": 9, "full_name": repo, "clone_url": "/tmp/x"}

    async def open_issues_labeled(self, repo: str, label: str) -> AsyncIterator[dict[str, Any]]:
        self.labels_asked.append(label)
        for issue in self.issues:
            yield issue

    async def label_actor(self, repo: str, issue_number: int, label: str) -> LabelActor | None:
        return self.actors.get(issue_number)


MAX_PAYLOAD = 16_384


def backfill(
    store: Store,
    fake: FakeLog,
    queue: RecordingQueue,
    clock: FakeClock,
    *,
    max_n: int = 100,
    configs: RepoConfigs | None = None,
) -> Backfill:
    return Backfill(
        store,
        fake,
        queue,  # type: ignore[arg-type]
        clock,
        triggers=RepoTriggers(TRIGGERS, configs or NoRepoConfigs()),
        hooks=[HOOK],
        interval_s=300,
        max_age_s=3 * DAY,
        max_deliveries=max_n,
        reconcile_interval_s=3600,
        max_payload_bytes=MAX_PAYLOAD,
    )


async def test_backfill__missing_delivery_stored_under_its_guid_and_hook_and_enqueued(
    store: Store, clock: FakeClock
) -> None:
    fake, queue = FakeLog(), RecordingQueue()
    fake.add("g-missed", clock() - 60, 0, labeled(1))
    fake.add("g-answered", clock() - 50, 202, labeled(2))
    counts = await backfill(store, fake, queue, clock).run_once()
    assert counts.ingested == 1
    row = await store.deliveries.get("g-missed", "42")
    assert row is not None
    assert row.event == "issues"
    assert row.payload == labeled(1)
    assert [d["delivery_id"] for d in queue.jobs.values()] == ["g-missed"]
    assert fake.fetched == [1], "a delivery answered 2xx was fetched"


async def test_backfill__guid_already_in_the_inbox_is_not_fetched_again(
    store: Store, clock: FakeClock
) -> None:
    """The 2xx was lost on the way back (the log says failed) but the row is stored."""
    fake, queue = FakeLog(), RecordingQueue()
    fake.add("g-1", clock() - 60, 0, labeled(1))
    first = backfill(store, fake, queue, clock)
    await first.run_once()
    again = await backfill(store, fake, queue, clock).run_once()  # another process
    assert again.ingested == 0
    assert fake.fetched == [1]


async def test_backfill__at_most_n_per_pass_oldest_first_rest_next_pass(
    store: Store, clock: FakeClock
) -> None:
    fake, queue = FakeLog(), RecordingQueue()
    for i in range(5):
        fake.add(f"g-{i}", clock() - 100 + i, 0, labeled(i + 1))
    bf = backfill(store, fake, queue, clock, max_n=2)
    first = await bf.run_once()
    assert (first.ingested, first.deferred) == (2, 3)
    assert [await store.deliveries.get(f"g-{i}", "42") is not None for i in range(5)] == [
        True,
        True,
        False,
        False,
        False,
    ]
    second = await bf.run_once()
    third = await bf.run_once()
    assert (second.ingested, third.ingested, third.deferred) == (2, 1, 0)
    assert len(queue.jobs) == 5


async def test_backfill__older_than_the_bound_not_fetched_and_not_read_further(
    store: Store, clock: FakeClock
) -> None:
    fake, queue = FakeLog(), RecordingQueue()
    fake.add("g-ancient", clock() - 4 * DAY, 0, labeled(1))
    fake.add("g-old", clock() - 3 * DAY - 1, 0, labeled(2))
    fake.add("g-new", clock() - 10, 0, labeled(3))
    counts = await backfill(store, fake, queue, clock).run_once()
    assert counts.ingested == 1
    assert counts.examined == 1
    assert await store.deliveries.get("g-old", "42") is None
    assert fake.listed == 2, "the log was read past the first attempt older than the bound"


async def test_backfill__after_a_complete_pass_reads_back_only_to_the_last_seen(
    store: Store, clock: FakeClock
) -> None:
    fake, queue = FakeLog(), RecordingQueue()
    for i in range(3):
        fake.add(f"g-{i}", clock() - 3600 * (3 - i), 202, labeled(i + 1))
    bf = backfill(store, fake, queue, clock)
    assert (await bf.run_once()).examined == 3
    clock.advance(300)
    fake.add("g-late", clock() - 5, 0, labeled(9))
    fake.listed = 0
    second = await bf.run_once()
    # g-late and g-2 (the newest seen, within the overlap), then g-1 is older: stop.
    assert (second.ingested, second.examined, fake.listed) == (1, 2, 3)


async def test_backfill__ignored_event_fetched_once(store: Store, clock: FakeClock) -> None:
    fake, queue = FakeLog(), RecordingQueue()
    # Unlabelled: no trigger of ours nor of any repository's (a label added would be kept).
    fake.add("g-other", clock() - 60, 0, {**labeled(1), "action": "unlabeled"})
    bf = backfill(store, fake, queue, clock)
    assert (await bf.run_once()).ignored == 1
    assert (await bf.run_once()) == BackfillCounts(examined=1)
    assert fake.fetched == [1]
    assert not queue.jobs


async def test_backfill__payload_over_the_webhook_limit__refused_once_nothing_stored(
    store: Store, clock: FakeClock
) -> None:
    fake, queue = FakeLog(), RecordingQueue()
    big = labeled(1)
    big["issue"] = {**big["issue"], "body": "x" * MAX_PAYLOAD}
    fake.add("g-big", clock() - 60, 0, big)
    bf = backfill(store, fake, queue, clock)
    assert (await bf.run_once()).ignored == 1
    assert await store.deliveries.get("g-big", str(HOOK[1])) is None
    assert (await bf.run_once()) == BackfillCounts(examined=1)  # settled: not fetched again
    assert fake.fetched == [1]
    assert not queue.jobs


async def test_reconcile__labelled_issue_without_task_routed_once_by_the_label_actor(
    store: Store, clock: FakeClock
) -> None:
    fake, queue = FakeLog(), RecordingQueue()
    fake.issues = [{"number": 3, "title": "t", "body": ""}, {"number": 4, "title": "u"}]
    fake.actors = {3: LabelActor(77, {"login": "alice", "type": "User"})}
    bf = backfill(store, fake, queue, clock)
    first = await bf.reconcile_once()
    second = await bf.reconcile_once()
    assert (first.issues, first.routed, first.no_actor) == (2, 1, 1)
    assert second.routed == 0, "a repeated pass stored a second synthetic event"
    row = await store.deliveries.get(reconcile_delivery_id(9, REPO, 3, 77), "")
    assert row is not None
    assert row.payload["sender"]["login"] == "alice"
    assert len(queue.jobs) == 1


class RobotGo:
    """A repository naming its own plan label; `broken`: its settings cannot be read."""

    def __init__(self, *, broken: bool = False) -> None:
        self.broken = broken

    async def for_repo(self, repo: str, default_branch: str) -> RepoConfig:
        if self.broken:
            raise ForgeError("GET contents → 502")
        return RepoConfig(parse_config("triggers: {plan_label: robot-go}"))


async def test_reconcile__a_repositorys_own_plan_label_is_the_one_looked_for(
    store: Store, clock: FakeClock
) -> None:
    fake, queue = FakeLog(), RecordingQueue()
    fake.issues = [{"number": 3, "title": "t", "body": ""}]
    fake.actors = {3: LabelActor(77, {"login": "alice", "type": "User"})}
    bf = backfill(store, fake, queue, clock, configs=RobotGo())
    assert (await bf.reconcile_once()).routed == 1
    assert fake.labels_asked == ["robot-go"]
    row = await store.deliveries.to_route(reconcile_delivery_id(9, REPO, 3, 77), "")
    assert row is not None
    assert row.parsed is not None
    assert row.parsed.intent is Intent.START_PLAN


async def test_reconcile__unreadable_settings__that_repository_skipped_this_pass(
    store: Store, clock: FakeClock
) -> None:
    fake, queue = FakeLog(), RecordingQueue()
    fake.issues = [{"number": 3, "title": "t", "body": ""}]
    bf = backfill(store, fake, queue, clock, configs=RobotGo(broken=True))
    assert await bf.reconcile_once() == ReconcileCounts(0, 0, 0)
    assert fake.labels_asked == []  # not looked for with the deployment's label instead


async def test_adapter__hook_deliveries_follow_the_cursor_lazily_with_the_app_jwt() -> None:
    """GitHub pages the log by `cursor` in `Link: rel="next"`; each page is asked as the
    App (a JWT), and no page is read beyond what the caller consumes."""
    asked: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        cursor = request.url.params.get("cursor")
        start = {None: 0, "v1_8": 2, "v1_6": 4}[cursor]
        items = [
            {
                "id": 10 - n,
                "guid": f"g{10 - n}",
                "delivered_at": "2026-01-01T00:00:00Z",
                "status_code": 0,
                "event": "issues",
            }
            for n in range(start, start + 2)
        ]
        link = f'<http://gh.test/app/hook/deliveries?per_page=2&cursor=v1_{8 - start}>; rel="next"'
        return httpx.Response(200, content=json.dumps(items), headers={"link": link})

    auth = AppAuth(1, _PEM, 5)
    http = GitHubHttp(
        auth,
        base_url="http://gh.test",
        policy=RequestPolicy.fast(),
        transport=httpx.MockTransport(handler),
    )
    forge = GitHubForge(http)
    seen = []
    async for d in forge.hook_deliveries(None):
        seen.append(d.guid)
        if len(seen) == 5:
            break
    await forge.aclose()
    assert seen == ["g10", "g9", "g8", "g7", "g6"]
    assert [r.url.params.get("cursor") for r in asked] == [None, "v1_8", "v1_6"]
    assert all(r.headers["authorization"].count(".") == 2 for r in asked), "not a JWT"


def _pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


_PEM = _pem()
