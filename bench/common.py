"""Shared pieces of the benchmark scripts (not a test suite: they print figures, never pass/fail).

Every script runs against the real PostgreSQL (a fresh database, dropped at
the end) and the real Redis (a fresh queue name under the `awbench` prefix),
as the product runs in production.
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from chaos.config import ChaosConfig
from chaos.driver import Users
from chaos.services import create_database, drop_database
from chaos.world import BOT, REPO, SECRET, STRANGER, TOKEN, USER, Timeline
from sqlalchemy import event

from agent_workflow.config import Settings, load_settings
from agent_workflow.ingress.app import create_app
from agent_workflow.queue.bullmq_backend import BullQueue, BullWorkerRunner
from agent_workflow.service.jobs import route_job
from agent_workflow.service.runtime import Runtime, open_runtime
from agent_workflow.store import Store, connect
from github_emulator import EmulatorServer
from github_emulator.server import serve_app

PG_ADMIN_URL = os.environ.get(
    "AW_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("AW_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BENCH_PREFIX = "awbench"


def machine() -> str:
    """nproc, CPU model and RAM, for the record."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                line.split(":", 1)[1].strip() for line in f if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    ram = "?"
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(line.split()[1] for line in f if line.startswith("MemTotal")))
            ram = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} CPUs ({model}), {ram} RAM, Python {platform.python_version()}"


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database (migrated by whoever connects first), dropped after."""
    url = await create_database(PG_ADMIN_URL, prefix="aw_bench")
    try:
        yield url
    finally:
        await drop_database(PG_ADMIN_URL, url)


@dataclass
class StatementCounter:
    """Counts what one engine sends to the database: statements, and transactions begun."""

    statements: Counter[str] = field(default_factory=Counter)
    texts: Counter[str] = field(default_factory=Counter)  # each statement, shortened
    begins: int = 0
    enabled: bool = True

    def attach(self, store: Store) -> None:
        """Count every statement the store sends (SQLAlchemy or straight to the driver)
        and every transaction SQLAlchemy begins."""

        def before(statement: str) -> None:
            if self.enabled:
                self.statements[statement.split(None, 1)[0].upper()] += 1
                self.texts[" ".join(statement.split())[:90]] += 1

        def begin(_conn: Any) -> None:
            if self.enabled:
                self.begins += 1

        store.db.observe(before)
        event.listen(store.engine.sync_engine, "begin", begin)

    @property
    def total(self) -> int:
        """Statements sent."""
        return sum(self.statements.values())

    def reset(self) -> None:
        """Start counting from zero."""
        self.statements.clear()
        self.texts.clear()
        self.begins = 0


@dataclass
class InProcessSystem:
    """The ingress (as `aw serve` builds it) and one BullMQ worker, in this process."""

    settings: Settings
    rt: Runtime
    emu: EmulatorServer
    store: Store
    """A second connection for the benchmark's own reads (not counted)."""
    counter: StatementCounter
    ingress_url: str


def bench_settings(db_url: str, emu_url: str, port: int, queue: str, **extra: Any) -> Settings:
    """Settings of an `aw` process pointed at the emulator, with a benchmark queue."""
    return load_settings(
        database_url=db_url,
        redis_url=REDIS_URL,
        github_api_url=emu_url,
        github_token=TOKEN,
        webhook_secret=SECRET,
        bot_login=BOT,
        agent="scripted",
        github_mutation_interval_s=0.0,
        queue_name=queue,
        queue_prefix=BENCH_PREFIX,
        port=port,
        owner="bench-worker",
        **extra,
    )


@asynccontextmanager
async def in_process_system(
    db_url: str, queue: str, **extra: Any
) -> AsyncIterator[InProcessSystem]:
    """Emulator (own thread) → ingress (this loop) → BullMQ → worker runtime (this loop)."""
    from agent_workflow.demo.process import free_port

    port = free_port()
    hook = f"http://127.0.0.1:{port}/webhooks/github"
    async with EmulatorServer(
        token=TOKEN, bot_login=BOT, webhook_url=hook, webhook_secret=SECRET, thread=True
    ) as emu:
        await emu.admin.create_repo(REPO)
        await emu.admin.set_permission(REPO, USER, "write")
        await emu.admin.set_permission(REPO, STRANGER, "read")
        settings = bench_settings(db_url, emu.url, port, queue, **extra)
        async with open_runtime(settings) as rt:
            counter = StatementCounter()
            counter.attach(rt.store)

            async def on_accepted(delivery_id: str, hook_id: str) -> None:
                job_id, data = route_job(delivery_id, hook_id)
                await rt.queue.enqueue(job_id, data)

            app = create_app(
                rt.store,
                on_accepted,
                secret=SECRET,
                max_body_bytes=settings.webhook_max_body_bytes,
                triggers=rt.triggers,
                body_timeout_s=10.0,
            )
            async with serve_app(app, port=port) as url:
                reader = await connect(db_url, migrate=False)
                try:
                    yield InProcessSystem(settings, rt, emu, reader, counter, url)
                finally:
                    await reader.close()
                    assert isinstance(rt.queue, BullQueue)
                    await rt.queue.obliterate()


def runner_for(system: InProcessSystem, concurrency: int) -> BullWorkerRunner:
    """A BullMQ consumer running the system's job handler (what `aw worker` runs)."""
    s = system.settings
    assert s.redis_url is not None
    return BullWorkerRunner(
        s.redis_url,
        s.queue_name,
        system.rt.handler,
        prefix=s.queue_prefix,
        concurrency=concurrency,
        lock_duration_ms=s.lock_duration_ms,
        stalled_interval_ms=s.stalled_interval_ms,
        max_stalled_count=s.max_stalled_count,
        grace_s=5.0,
        worker_name="bench-worker",
    )


async def drive_issues(system: InProcessSystem, issues: int, timeout_s: float = 300.0) -> Users:
    """Users take `issues` issues through the lifecycle (no noise, no blocks); returns them."""
    config = ChaosConfig(
        issues=issues,
        issue_interval_s=0.0,
        block_fraction=0.0,
        error_fraction=0.0,
        noise_fraction=0.0,
    )
    users = Users(config, system.emu.admin, system.store, Timeline(), random.Random(0))
    await users.create_issues()
    await users.run(time.monotonic() + timeout_s)
    if not users.all_done:
        raise RuntimeError(
            f"only {sum(s.done_at is not None for s in users.issues.values())} issues finished"
        )
    return users


async def queue_idle(system: InProcessSystem, timeout_s: float = 60.0) -> None:
    """Wait until the emulator sent every webhook and the queue has nothing left to do."""
    assert isinstance(system.rt.queue, BullQueue)
    deadline = time.monotonic() + timeout_s
    await system.emu.admin.wait_webhooks()
    while time.monotonic() < deadline:
        counts = await system.rt.queue.counts()
        if not any(counts.get(k, 0) for k in ("waiting", "active", "delayed", "prioritized")):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the queue did not drain")
