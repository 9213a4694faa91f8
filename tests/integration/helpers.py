"""Shared pieces of the integration tests: the emulated world, request counts, waiting.

Events and the issue facts behind them come from `tests.support.events`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import Awaitable, Callable

from agent_workflow.core.model import Phase
from agent_workflow.core.runner import session_id_for
from agent_workflow.forge.github import GitHubForge
from agent_workflow.forge.policy import RequestPolicy
from agent_workflow.store import Store
from github_emulator import Counters, EmulatorServer
from tests.core.helpers import LEASE_S
from tests.support.events import REPO, TRUSTED, UNTRUSTED, task_info

TOKEN = "integration-token"
SECRET = "integration-webhook-secret"

# Counter keys: "METHOD template", the template as GitHub documents the route.
_ISSUE = "/repos/{owner}/{repo}/issues/{issue_number}"
COMMENTS_POST = f"POST {_ISSUE}/comments"
COMMENTS_GET = f"GET {_ISSUE}/comments"
LABELS_POST = f"POST {_ISSUE}/labels"
LABEL_DELETE = f"DELETE {_ISSUE}/labels/{{name}}"
PULLS_POST = "POST /repos/{owner}/{repo}/pulls"
PULLS_GET = "GET /repos/{owner}/{repo}/pulls"
PERMISSION_GET = "GET /repos/{owner}/{repo}/collaborators/{username}/permission"
#: The repository's `.github/agent-workflow.yml`: read once (absent: remembered), then 304s.
CONTENTS_GET = "GET /repos/{owner}/{repo}/contents/{path}"


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


async def abandon_a_plan(store: Store, emu: EmulatorServer) -> int:
    """A new issue whose plan a worker claimed long ago, started its agent for and died
    with: the phase is active under a lapsed lease, its `fresh` run recorded. Returns the
    issue's number."""
    number = await emu.admin.create_issue(REPO, "Add widgets", author=TRUSTED)
    long_ago = time.time() - 10 * LEASE_S
    task = await store.tasks.ensure(task_info(number), long_ago)
    run = await store.phases.ensure(task.id, Phase.PLAN, "lost-delivery", long_ago)
    dead = await store.phases.claim(run.task_id, run.phase, "dead-worker", LEASE_S, long_ago)
    assert dead is not None
    await store.phases.start_agent(
        dead.guard,
        session_id=session_id_for(task.id, Phase.PLAN, 1),
        mode="fresh",
        owner="dead-worker",
        now=long_ago,
    )
    return number
