"""The system under test, set up and torn down as one: Redis, database, emulator, serve, workers.

`system_under_test(config)` yields a `SystemUnderTest`: a private
`redis-server`, a fresh PostgreSQL database (dropped afterwards unless
`config.keep`), the GitHub emulator in its own thread with the repository and
its users, a real `aw serve` and `config.workers` real `aw worker` processes,
a store for reading the database and a BullMQ producer for injecting jobs.
The chaos run and targeted fault scenarios (tests/chaos) both build on it.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from agent_workflow.config import Settings
from agent_workflow.demo.process import free_port
from agent_workflow.queue.bullmq_backend import BullQueue
from agent_workflow.store import Store, connect
from chaos.cluster import Cluster
from chaos.config import ChaosConfig
from chaos.services import RedisServer, create_database, drop_database
from chaos.world import BOT, REPO, SECRET, STRANGER, TOKEN, USER
from github_emulator import EmulatorServer


@dataclass
class SystemUnderTest:
    """Handles on every part of a running system."""

    config: ChaosConfig
    workdir: Path
    redis: RedisServer
    database_url: str
    emu: EmulatorServer
    cluster: Cluster
    store: Store
    """The harness's own connection, for reading state (not the system's)."""
    queue: BullQueue
    """A producer on the system's queue, for injecting duplicate jobs."""


def aw_environment(
    config: ChaosConfig, workdir: Path, database_url: str, redis_url: str, emu_url: str, port: int
) -> dict[str, str]:
    """The environment every `aw` process of the system shares."""
    return {
        **config.aw_env(),
        "AW_DATABASE_URL": database_url,
        "AW_REDIS_URL": redis_url,
        "AW_GITHUB_API_URL": emu_url,
        "AW_GITHUB_TOKEN": TOKEN,
        "AW_WEBHOOK_SECRET": SECRET,
        "AW_BOT_LOGIN": BOT,
        "AW_HOST": "127.0.0.1",
        "AW_PORT": str(port),
        "AW_CONFIG_FILE": str(workdir / "no-config.toml"),
        "AW_WORKSPACE_DIR": str(workdir / "workspaces"),
    }


@asynccontextmanager
async def github_world(serve_url: str) -> AsyncIterator[EmulatorServer]:
    """The emulator, sending webhooks to `serve_url`, with the repository and its users."""
    async with EmulatorServer(
        token=TOKEN,
        bot_login=BOT,
        webhook_url=f"{serve_url}/webhooks/github",
        webhook_secret=SECRET,
        thread=True,
    ) as emu:
        await emu.admin.create_repo(REPO)
        await emu.admin.set_permission(REPO, USER, "write")
        await emu.admin.set_permission(REPO, STRANGER, "read")
        yield emu


@asynccontextmanager
async def system_under_test(config: ChaosConfig) -> AsyncIterator[SystemUnderTest]:
    """Start everything; stop and clean up everything on exit, whatever happened."""
    workdir = config.workdir or Path(tempfile.mkdtemp(prefix="aw-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        redis = RedisServer(workdir / "redis.log")
        await redis.start()
        stack.push_async_callback(redis.stop)
        database_url = await create_database(config.pg_admin_url)
        if not config.keep:
            stack.push_async_callback(drop_database, config.pg_admin_url, database_url)
        port = free_port()
        serve_url = f"http://127.0.0.1:{port}"
        emu = await stack.enter_async_context(github_world(serve_url))
        env = aw_environment(config, workdir, database_url, redis.url, emu.url, port)
        cluster = Cluster(workdir, env, config.workers, config.seed)
        stack.push_async_callback(cluster.shutdown)
        await cluster.start(serve_url)
        store = await connect(database_url, migrate=False)
        stack.push_async_callback(store.close)
        # The children inherit this environment, so they agree on the queue's name.
        defaults = Settings()
        queue = BullQueue(redis.url, defaults.queue_name, defaults.queue_prefix)
        stack.push_async_callback(queue.close)
        yield SystemUnderTest(config, workdir, redis, database_url, emu, cluster, store, queue)
