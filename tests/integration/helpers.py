"""Shared pieces of the integration tests: the emulated world, events, a wired core, waiting."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import socket
from collections.abc import Awaitable, Callable

from sqlalchemy import func, select
from sqlalchemy.sql import FromClause

from agent_workflow.agents.scripted import ScriptedAgent
from agent_workflow.core.model import Event, Intent, TaskInfo
from agent_workflow.core.runner import RunnerSettings
from agent_workflow.core.wiring import Core, build_core
from agent_workflow.forge.emulator import Counters, EmulatorServer
from agent_workflow.forge.github import GitHubForge
from agent_workflow.forge.policy import RequestPolicy
from agent_workflow.store import Store
from tests.conftest import FakeClock

TOKEN = "integration-token"
BOT = "agent-workflow[bot]"
REPO = "octo/demo"
SECRET = "integration-webhook-secret"
TRUSTED = "alice"  # write permission
UNTRUSTED = "mallory"  # read permission
LEASE_S = 30.0

# Counter keys: "METHOD template", the template as GitHub documents the route.
_ISSUE = "/repos/{owner}/{repo}/issues/{issue_number}"
COMMENTS_POST = f"POST {_ISSUE}/comments"
COMMENTS_GET = f"GET {_ISSUE}/comments"
LABELS_POST = f"POST {_ISSUE}/labels"
LABEL_DELETE = f"DELETE {_ISSUE}/labels/{{name}}"
PULLS_POST = "POST /repos/{owner}/{repo}/pulls"
PULLS_GET = "GET /repos/{owner}/{repo}/pulls"
PERMISSION_GET = "GET /repos/{owner}/{repo}/collaborators/{username}/permission"

# Fault paths are regexes over the request path.
COMMENTS_PATH = r"/issues/\d+/comments$"
PULLS_PATH = r"/pulls$"

_ids = itertools.count(1)


def policy() -> RequestPolicy:
    """Test-sized waits and no spacing between mutations (retry-after is still honoured)."""
    return dataclasses.replace(RequestPolicy.fast(), mutation_interval=0.0)


def github_forge(emu: EmulatorServer) -> GitHubForge:
    """The real REST adapter pointed at the emulator."""
    return GitHubForge.from_token(TOKEN, base_url=emu.url, policy=policy())


async def setup_world(emu: EmulatorServer) -> None:
    """Repository `octo/demo` with a trusted (write) and an untrusted (read) collaborator."""
    await emu.admin.create_repo(REPO)
    await emu.admin.set_permission(REPO, TRUSTED, "write")
    await emu.admin.set_permission(REPO, UNTRUSTED, "read")


def event(
    intent: Intent,
    issue: int,
    *,
    delivery: str | None = None,
    actor: str = TRUSTED,
    pr_number: int | None = None,
) -> Event:
    """A parsed event for `octo/demo`, as the ingress would produce it."""
    return Event(
        delivery_id=delivery or f"it-delivery-{next(_ids)}",
        intent=intent,
        repo=REPO,
        issue_number=issue,
        actor=actor,
        title=f"Issue {issue}",
        body="Make it better.",
        clone_url=f"https://github.com/{REPO}.git",
        default_branch="main",
        pr_number=pr_number,
    )


def task_info(issue: int) -> TaskInfo:
    """The issue facts a task of `octo/demo` is created with."""
    return TaskInfo(
        repo=REPO,
        issue_number=issue,
        title=f"Issue {issue}",
        body="Make it better.",
        clone_url=f"https://github.com/{REPO}.git",
        default_branch="main",
    )


def make_core(
    store: Store,
    clock: FakeClock,
    forge: GitHubForge,
    agent: ScriptedAgent,
    *,
    owner: str = "worker-a",
) -> Core:
    """The core over the real adapter, a fake clock (leases expire on demand), no backoff."""
    return build_core(
        store,
        forge,
        agent,
        RunnerSettings(owner=owner, lease_s=LEASE_S, heartbeat_s=LEASE_S / 3),
        clock=clock,
        own_login=BOT,
        uncertain_backoff_s=0.0,
    )


async def count_rows(store: Store, table: FromClause) -> int:
    """Rows in one table."""
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


def github_calls(counters: Counters) -> dict[str, int]:
    """Non-zero REST request counts by endpoint (the admin API is not counted)."""
    return {key: n for key, n in sorted(counters.requests.items()) if n}


#: How long background work (routing, effects) may take before a test calls it stuck.
SETTLE_S = 15.0


async def eventually(check: Callable[[], Awaitable[bool]], *, what: str = "condition") -> None:
    """Poll `check` until it holds; fail naming `what` after `SETTLE_S` seconds."""
    try:
        async with asyncio.timeout(SETTLE_S):
            while not await check():  # noqa: ASYNC110 - polls the database and the emulator
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out after {SETTLE_S}s waiting for {what}") from None


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
