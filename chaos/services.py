"""The chaos run's own infrastructure: a private Redis server and a fresh PostgreSQL database.

The shared Redis on 6379 is used by other tests at the same time, so a chaos
run never restarts it: it starts its own `redis-server` on a free port as a
child process (no persistence, like a cache that loses everything on restart)
and kills and restarts *that*. PostgreSQL is shared too, but each run gets a
database of its own, dropped at the end unless asked to keep it.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import uuid
from pathlib import Path
from typing import Final

import asyncpg

from agent_workflow.core.errors import AgentWorkflowError
from agent_workflow.demo.process import free_port

REDIS_START_TIMEOUT_S: Final = 10.0
"""A redis-server with no data to load answers PING within milliseconds; 10 s means broken."""

REDIS_STOP_TIMEOUT_S: Final = 5.0
"""How long a SIGTERMed redis-server may take to exit before it is SIGKILLed."""


class ChaosSetupError(AgentWorkflowError):
    """The chaos run could not set up its infrastructure (no redis-server, no PostgreSQL)."""


class RedisServer:
    """A `redis-server` child on a fixed port that can be killed and started again.

    Started with `--save "" --appendonly no`: a restart loses every queued job,
    the harshest thing a Redis restart can do to BullMQ.
    """

    def __init__(self, log_path: Path, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ChaosSetupError("redis-server is not on PATH (the chaos run starts its own)")
        self.binary = binary
        self.port = port or free_port()
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:<port>/0`."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        """Spawn the server and wait until it answers PING."""
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--protected-mode",
                "no",
                stdout=log,
                stderr=log,
                stdin=asyncio.subprocess.DEVNULL,
            )
        await self._wait_ping()

    async def _wait_ping(self) -> None:
        deadline = asyncio.get_running_loop().time() + REDIS_START_TIMEOUT_S
        while asyncio.get_running_loop().time() < deadline:
            if not self.running:
                raise ChaosSetupError(f"redis-server exited at start; see {self.log_path}")
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(b"PING\r\n")
                await writer.drain()
                line = await asyncio.wait_for(reader.readline(), 1.0)
                writer.close()
                await writer.wait_closed()
                if line.startswith(b"+PONG"):
                    return
            except (OSError, TimeoutError):
                pass
            await asyncio.sleep(0.05)
        raise ChaosSetupError(f"redis-server on port {self.port} did not answer PING")

    async def kill(self) -> None:
        """SIGKILL the server (everything in it is lost) and reap it."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    async def restart(self, down_s: float = 0.0) -> None:
        """Kill, stay down `down_s` seconds, start again on the same port."""
        await self.kill()
        if down_s > 0:
            await asyncio.sleep(down_s)
        await self.start()
        self.restarts += 1

    async def stop(self) -> None:
        """SIGTERM (SIGKILL if it lingers) and reap."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), REDIS_STOP_TIMEOUT_S)
        except TimeoutError:
            await self.kill()


def database_url(admin_url: str, name: str) -> str:
    """The URL of database `name` on the server `admin_url` points at."""
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


async def create_database(admin_url: str, prefix: str = "aw_chaos") -> str:
    """Create an empty database with a unique name; return its URL (schema: `aw` migrates it)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        conn = await asyncpg.connect(admin_url)
    except (OSError, asyncpg.PostgresError) as exc:
        raise ChaosSetupError(f"cannot reach PostgreSQL at {admin_url}: {exc}") from exc
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return database_url(admin_url, name)


async def drop_database(admin_url: str, url: str) -> None:
    """Drop the database `url` names (connections are forced off)."""
    name = url.rpartition("/")[2]
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
