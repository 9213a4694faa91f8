"""Fixtures: the emulator as GitHub, a fresh PostgreSQL database and BullMQ queue, `aw` children.

Real processes, real Redis and PostgreSQL (never skipped: a missing service is a
failure), the scripted agent. Whatever a test starts is killed at teardown, in
an order that leaves no process running against a dropped database or queue.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Any

import pytest

from agent_workflow.demo.process import free_port
from agent_workflow.queue.bullmq_backend import BullQueue
from agent_workflow.store import connect
from github_emulator import EmulatorServer
from tests.acceptance.system import BOT, REPO, SECRET, TOKEN, USER, Processes, Timing, World
from tests.conftest import drop_pg_database, new_pg_database

QUEUE_PREFIX = "aw"


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """Remember each phase's report on the item, so teardown knows whether the test failed."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def timing() -> Timing:
    """Short leases and intervals; a test overrides it to change them."""
    return Timing()


@pytest.fixture
def serve_port() -> int:
    """Where `aw serve` will listen (the emulator sends its webhooks there)."""
    return free_port()


@pytest.fixture
def serve_url(serve_port: int) -> str:
    """The base URL of `aw serve`."""
    return f"http://127.0.0.1:{serve_port}"


@pytest.fixture
async def emulator(serve_url: str) -> AsyncIterator[EmulatorServer]:
    """The GitHub emulator in its own thread, with `acme/widgets` and a trusted user."""
    async with EmulatorServer(
        token=TOKEN,
        bot_login=BOT,
        webhook_url=f"{serve_url}/webhooks/github",
        webhook_secret=SECRET,
        thread=True,
    ) as emu:
        await emu.admin.create_repo(REPO)
        await emu.admin.set_permission(REPO, USER, "write")
        yield emu


@pytest.fixture
async def procs(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    emulator: EmulatorServer,
    serve_port: int,
    timing: Timing,
) -> AsyncIterator[Processes]:
    """The test's `aw` children (environment without storage yet); killed at teardown.

    On failure the tail of every process log is printed with the report.
    """
    env = {
        "AW_AGENT": "scripted",
        "AW_GITHUB_API_URL": emulator.url,
        "AW_GITHUB_TOKEN": TOKEN,
        "AW_WEBHOOK_SECRET": SECRET,
        "AW_BOT_LOGIN": BOT,
        "AW_PORT": str(serve_port),
        "AW_GITHUB_MUTATION_INTERVAL_S": "0",
        "AW_CONFIG_FILE": str(tmp_path / "no-such-config.toml"),
        "AW_WORKSPACE_DIR": str(tmp_path / "workspaces"),
        "AW_LOG_JSON": "1",
        **timing.env(),
    }
    processes = Processes(tmp_path, env)
    try:
        yield processes
    finally:
        await processes.aclose()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(f"process logs (in {tmp_path}):\n{processes.log_tails(60)}")


@pytest.fixture
async def pg_url(pg_template: str) -> AsyncIterator[str]:
    """A fresh, migrated PostgreSQL database for this test, dropped afterwards."""
    url = await new_pg_database(pg_template)
    try:
        yield url
    finally:
        await drop_pg_database(url)


@pytest.fixture
async def bull(redis_url: str) -> AsyncIterator[BullQueue]:
    """A BullMQ queue no other test uses, obliterated afterwards."""
    queue = BullQueue(redis_url, f"accept-{uuid.uuid4().hex[:12]}", QUEUE_PREFIX)
    try:
        yield queue
    finally:
        await queue.obliterate()
        await queue.close()


@pytest.fixture
async def distributed(
    pg_url: str, bull: BullQueue, redis_url: str, procs: Processes, emulator: EmulatorServer
) -> AsyncIterator[World]:
    """PostgreSQL + BullMQ: `aw serve` only ingests, `aw worker`s consume (the test starts them)."""
    procs.env.update(
        {
            "AW_DATABASE_URL": pg_url,
            "AW_REDIS_URL": redis_url,
            "AW_QUEUE_NAME": bull.name,
            "AW_QUEUE_PREFIX": QUEUE_PREFIX,
        }
    )
    store = await connect(pg_url)
    try:
        yield World(emulator.admin, store, procs)
    finally:
        await procs.aclose()  # before the queue is obliterated and the database dropped
        await store.close()


@pytest.fixture
async def embedded(
    tmp_path: Path, procs: Processes, emulator: EmulatorServer
) -> AsyncIterator[World]:
    """No Redis: `aw serve` alone routes in-process, on a SQLite file."""
    url = f"sqlite:///{tmp_path / 'aw.db'}"
    procs.env.update({"AW_DATABASE_URL": url, "AW_REDIS_URL": ""})
    store = await connect(url)
    try:
        yield World(emulator.admin, store, procs)
    finally:
        await procs.aclose()
        await store.close()
