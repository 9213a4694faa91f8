"""The dashboard over HTTP (httpx against the ASGI app) on a store the real core wrote."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.routing import Route

from agent_workflow.config import load_settings
from agent_workflow.core.model import Intent, Phase, PhaseStatus
from agent_workflow.core.repo_settings import RepoConfig
from agent_workflow.dashboard.app import dashboard_for
from agent_workflow.dashboard.auth import COOKIE
from agent_workflow.forge.repo_config import parse_config
from agent_workflow.store import Store
from agent_workflow.store.schema import phase_runs
from tests.conftest import FakeClock
from tests.dashboard.world import (
    BASE,
    HOSTILE_TITLE,
    HTML,
    ORIGIN,
    OTHER_REPO,
    REPO,
    TOKEN,
    World,
    dashboard_world,
)
from tests.support.events import event

BEARER = {"authorization": f"Bearer {TOKEN}"}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
async def world(store: Store, clock: FakeClock) -> AsyncIterator[World]:
    async with dashboard_world(store, clock) as w:
        yield w


async def _task_id(world: World, issue: int, repo: str = REPO) -> int:
    task = await world.store.tasks.find(repo, issue)
    assert task is not None
    return task.id


async def test_dashboard__absent_without_token_setting(store: Store) -> None:
    """No `AW_DASHBOARD_TOKEN`: `aw serve` mounts nothing, so /dashboard is a 404."""
    settings = load_settings(webhook_secret="x", agent="scripted")
    assert settings.dashboard_token is None

    async def enqueue(_d: str, _h: str) -> None:  # pragma: no cover - never called
        raise AssertionError

    assert dashboard_for(settings, store, enqueue) is None
    app = Starlette(routes=[Route("/healthz", lambda _r: httpx.Response(200))])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        for path in ("/dashboard", "/dashboard/", "/dashboard/login"):
            assert (await c.get(path, headers=BEARER)).status_code == 404
    with_token = load_settings(webhook_secret="x", agent="scripted", dashboard_token=TOKEN)
    assert dashboard_for(with_token, store, enqueue) is not None


async def test_dashboard__unauthenticated_is_refused(world: World) -> None:
    c = world.client
    assert (await c.get("/dashboard/")).status_code == 401
    page = await c.get("/dashboard/tasks/1?x=1", headers=HTML)
    assert page.status_code == 303
    assert page.headers["location"] == "/dashboard/login?next=%2Fdashboard%2Ftasks%2F1%3Fx%3D1"
    wrong = {"authorization": "Bearer not-the-token-at-all-000"}
    assert (await c.get("/dashboard/", headers=wrong)).status_code == 401
    forged = {"cookie": f"{COOKIE}={TOKEN}"}  # the token itself is no session cookie
    assert (await c.get("/dashboard/", headers=forged)).status_code == 401
    assert "Add widgets" not in (await c.get("/dashboard/", headers=forged)).text


async def test_dashboard__bearer_token_opens_it(world: World) -> None:
    answer = await world.client.get("/dashboard/", headers=BEARER)
    assert answer.status_code == 200
    assert "Add widgets" in answer.text
    assert answer.headers["cache-control"] == "no-store"
    assert "script-src" not in answer.headers["content-security-policy"]  # default-src 'none'
    assert "default-src 'none'" in answer.headers["content-security-policy"]


async def test_login__sets_a_strict_httponly_session_cookie(world: World) -> None:
    c = world.client
    answer = await c.post(
        "/dashboard/login",
        data={"token": TOKEN, "next": "/dashboard/tasks/1"},
        headers=ORIGIN,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard/tasks/1"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/dashboard"} <= attributes
    value = cookie.split(";")[0].partition("=")[2]
    assert TOKEN not in value
    assert (await c.get("/dashboard/")).status_code == 200  # the cookie is the session


async def test_login__wrong_token_is_refused_and_counted(world: World) -> None:
    c = world.client
    answer = await c.post(
        "/dashboard/login", data={"token": TOKEN[:-1] + "x", "next": "/"}, headers=ORIGIN
    )
    assert answer.status_code == 401
    assert "set-cookie" not in answer.headers
    assert "not right" in answer.text
    assert (await c.get("/dashboard/")).status_code == 401
    # The right token, but posted by another site's page, or a body far past any form.
    evil = await c.post(
        "/dashboard/login", data={"token": TOKEN}, headers={"origin": "https://evil.example"}
    )
    assert evil.status_code == 403
    assert "set-cookie" not in evil.headers
    huge = await c.post("/dashboard/login", data={"token": "x" * 20_000}, headers=ORIGIN)
    assert huge.status_code == 413


async def test_login__never_redirects_off_the_dashboard(world: World) -> None:
    """`next` is kept only as a dashboard path (`safe_next`'s cases: tests/dashboard/test_views.py)."""
    answer = await world.client.post(
        "/dashboard/login",
        data={"token": TOKEN, "next": "//evil.example/dashboard/"},
        headers=ORIGIN,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard/"


async def test_tasks__list_shows_phases_in_words_and_pr(world: World) -> None:
    await world.login()
    page = (await world.client.get("/dashboard/")).text
    delivered = await _task_id(world, 7)
    task = await world.store.tasks.get(delivered)
    assert task is not None
    assert task.pr_number is not None
    assert f'href="/dashboard/tasks/{delivered}"' in page
    assert f">#{task.pr_number}</a>" in page
    assert "plan: complete" in page
    assert "deliver: complete" in page
    assert "plan: blocked" in page


async def test_tasks__hostile_title_is_shown_as_text(world: World) -> None:
    await world.login()
    hostile = await _task_id(world, 8)
    for path in ("/dashboard/", f"/dashboard/tasks/{hostile}"):
        page = (await world.client.get(path)).text
        assert HOSTILE_TITLE not in page
        assert "<script>alert(1)" not in page
        assert "<img src=x" not in page
        assert (
            "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&gt;&lt;img src=x onerror=alert(2)&gt;"
            in page
        )


BOTH_ENGINES = pytest.mark.parametrize("db_url", ["postgres", "sqlite"], indirect=True)


@BOTH_ENGINES
async def test_tasks__filters(world: World) -> None:
    await world.login()
    c = world.client

    async def issues(query: str) -> set[str]:
        page = (await c.get(f"/dashboard/?{query}")).text
        return set(re.findall(r'href="/dashboard/tasks/\d+">(#\d+)</a>', page))

    assert await issues("") == {"#7", "#8", "#9"}
    assert await issues(f"repo={OTHER_REPO}") == {"#9"}
    assert await issues(f"repo={REPO}") == {"#7", "#8"}
    assert await issues("blocked=1") == {"#8"}
    assert await issues("state=blocked") == {"#8"}
    assert await issues("state=complete") == {"#7", "#9"}
    assert await issues("state=bogus") == {"#7", "#8", "#9"}  # an unknown state narrows nothing
    assert await issues("dead=1") == set()
    assert await issues("limit=1") == {"#9"}  # the most recently active first
    assert await issues("limit=1&offset=1") == {"#8"}


@BOTH_ENGINES
async def test_task_page__timeline(world: World) -> None:
    await world.login()
    page = (await world.client.get(f"/dashboard/tasks/{await _task_id(world, 7)}")).text
    assert "plan attempt 1: fresh run by worker-a" in page
    assert "deliver attempt 1: fresh run by worker-a" in page
    assert "start_plan by alice" in page  # the delivery that started it
    task = await world.store.tasks.find(REPO, 7)
    assert task is not None
    assert f'href="https://github.com/{REPO}/pull/{task.pr_number}"' in page
    assert f"https://github.com/{REPO}/issues/7#issuecomment-" in page


async def _csrf(world: World, path: str) -> str:
    found = CSRF.search((await world.client.get(path)).text)
    assert found is not None, f"no CSRF token on {path}"
    return found.group(1)


def _wrong(token: str) -> str:
    """`token` with its last character changed (to another one, always)."""
    return token[:-1] + ("1" if token.endswith("0") else "0")


async def test_retry__csrf_missing_or_wrong_changes_nothing(world: World) -> None:
    await world.login()
    blocked = await _task_id(world, 8)
    path = f"/dashboard/tasks/{blocked}"
    token = await _csrf(world, path)
    for data, headers in (
        ({"phase": "plan"}, ORIGIN),
        ({"phase": "plan", "csrf": _wrong(token)}, ORIGIN),
        ({"phase": "plan", "csrf": token}, {"origin": "https://evil.example"}),
        ({"phase": "plan", "csrf": token}, {}),
    ):
        answer = await world.client.post(f"{path}/retry", data=data, headers=headers)
        assert answer.status_code == 403, (data, headers)
    run = await world.store.phases.get(blocked, Phase.PLAN)
    assert run is not None
    assert (run.status, run.attempt) == (PhaseStatus.BLOCKED, 1)
    assert world.routed == []


async def test_retry__goes_through_the_router_as_a_retry(world: World) -> None:
    """The blocked plan gets its second attempt the way `/retry` gives it: an inbox
    delivery routed by the job handler, the actor's permission checked."""
    await world.login()
    blocked = await _task_id(world, 8)
    path = f"/dashboard/tasks/{blocked}"
    answer = await world.client.post(
        f"{path}/retry", data={"phase": "plan", "csrf": await _csrf(world, path)}, headers=ORIGIN
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{path}?notice=retry+requested"
    [delivery_id] = world.routed
    stored = await world.store.deliveries.get(delivery_id, "dashboard")
    assert stored is not None
    assert stored.routed_at is not None
    run = await world.store.phases.get(blocked, Phase.PLAN)
    assert run is not None
    assert (run.status, run.attempt) == (PhaseStatus.COMPLETE, 2)
    assert world.forge.calls["permission"] >= 1  # the router asked GitHub about alice


class OwnRetryWord:
    """A repository whose settings file renames `/retry` (its triggers differ from ours),
    once `renamed` (the world's own events are routed before it is)."""

    renamed = False

    async def for_repo(self, repo: str, default_branch: str) -> RepoConfig:
        if not self.renamed:
            return RepoConfig()
        return RepoConfig(parse_config("triggers: {retry_command: /again}"))


async def test_retry__in_a_repository_with_its_own_triggers(store: Store, clock: FakeClock) -> None:
    """The dashboard's retry is no typed command: a repository's own words for the
    triggers do not turn it into an ignored delivery."""
    configs = OwnRetryWord()
    async with dashboard_world(store, clock, configs=configs) as world:
        configs.renamed = True
        await world.login()
        blocked = await _task_id(world, 8)
        path = f"/dashboard/tasks/{blocked}"
        csrf = await _csrf(world, path)
        answer = await world.client.post(
            f"{path}/retry", data={"phase": "plan", "csrf": csrf}, headers=ORIGIN
        )
        assert answer.status_code == 303
        run = await world.store.phases.get(blocked, Phase.PLAN)
        assert run is not None
        assert (run.status, run.attempt) == (PhaseStatus.COMPLETE, 2)


async def test_retry__untrusted_actor_changes_nothing(store: Store, clock: FakeClock) -> None:
    async with dashboard_world(store, clock, actor="mallory") as world:
        world.forge.permissions["mallory"] = "read"
        await world.login()
        blocked = await _task_id(world, 8)
        path = f"/dashboard/tasks/{blocked}"
        answer = await world.client.post(
            f"{path}/retry",
            data={"phase": "plan", "csrf": await _csrf(world, path)},
            headers=ORIGIN,
        )
        assert answer.status_code == 303
        run = await world.store.phases.get(blocked, Phase.PLAN)
        assert run is not None
        assert (run.status, run.attempt) == (PhaseStatus.BLOCKED, 1)


async def test_redrive__routes_a_dead_letter_again(world: World) -> None:
    """A `/retry` for #8 that was dead-lettered: listed, found by the filter, re-driven
    through the job handler (CSRF first), and it starts the plan's second attempt."""
    ev = event(Intent.RETRY, 8)
    await world.store.deliveries.record(
        delivery_id=ev.delivery_id,
        hook_id="1",
        event="issue_comment",
        action="created",
        payload={},
        parsed=ev,
        now=world.clock(),
    )
    for _ in range(3):
        await world.store.deliveries.note_failure(
            ev.delivery_id, "1", "boom", now=world.clock(), max_attempts=3
        )
    await world.login()
    listed = (await world.client.get("/dashboard/dead-letters")).text
    assert ev.delivery_id in listed
    filtered = (await world.client.get("/dashboard/?dead=1")).text
    assert set(re.findall(r'href="/dashboard/tasks/\d+">(#\d+)</a>', filtered)) == {"#8"}
    token = await _csrf(world, "/dashboard/dead-letters")
    form = {"delivery_id": ev.delivery_id, "hook_id": "1"}
    bad = await world.client.post("/dashboard/dead-letters/redrive", data=form, headers=ORIGIN)
    assert bad.status_code == 403
    stored = await world.store.deliveries.get(ev.delivery_id, "1")
    assert stored is not None
    assert stored.dead_at is not None
    answer = await world.client.post(
        "/dashboard/dead-letters/redrive", data={**form, "csrf": token}, headers=ORIGIN
    )
    assert answer.status_code == 303
    stored = await world.store.deliveries.get(ev.delivery_id, "1")
    assert stored is not None
    assert (stored.dead_at, stored.routed_at is not None) == (None, True)
    run = await world.store.phases.get(await _task_id(world, 8), Phase.PLAN)
    assert run is not None
    assert (run.status, run.attempt) == (PhaseStatus.COMPLETE, 2)


async def test_task_page__shows_each_attempts_progress_text(store: Store, clock: FakeClock) -> None:
    """The progress comment's latest body is kept with the phase run (fenced) and shown on
    the task page without a GitHub read."""
    async with dashboard_world(store, clock, progress_interval_s=0.0) as world:
        await world.login()
        task = await _task_id(world, 7)
        page = (await world.client.get(f"/dashboard/tasks/{task}")).text
        assert "Progress, " in page
        assert "Scripted step 3" in page
        kept = await _progress(world, task)
        assert set(kept) == {"plan", "deliver"}
        for phase, text in kept.items():  # the comment carries the ledger's marker after it
            assert "Done:" in text
            assert _progress_comment(world, phase).startswith(text), phase


def _progress_comment(world: World, phase: str) -> str:
    """The body of the phase's progress comment on the (memory) forge, as last edited."""
    [found] = [
        c.body for c in world.forge.bot_comments(REPO, 7) if f"{phase} (attempt 1)" in c.body
    ]
    return found


async def _progress(world: World, task: int) -> dict[str, str]:
    stmt = select(phase_runs.c.phase, phase_runs.c.progress).where(phase_runs.c.task_id == task)
    async with world.store.engine.connect() as conn:
        return {r.phase: r.progress for r in (await conn.execute(stmt)).all()}
