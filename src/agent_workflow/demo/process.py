"""Start, kill and restart `aw` processes (the demo and the acceptance tests use this)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import httpx


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AwProcess:
    """One `aw <command>` child process with its own environment and log file."""

    def __init__(self, command: str, env: dict[str, str], log_path: Path) -> None:
        self.command = command
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Spawn the process (logs appended to `log_path`)."""
        log = self.log_path.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agent_workflow.cli",
            *self.command.split(),
            env=self.env,
            stdout=log,
            stderr=log,
            stdin=asyncio.subprocess.DEVNULL,
        )
        log.close()

    @property
    def pid(self) -> int:
        """The child's pid."""
        assert self.proc is not None
        return self.proc.pid

    async def wait_healthy(self, url: str, timeout_s: float = 30.0) -> None:
        """Poll `GET url/healthz` until it answers 200 (or the process dies)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        async with httpx.AsyncClient(timeout=1.0) as client:
            while asyncio.get_running_loop().time() < deadline:
                if self.proc is not None and self.proc.returncode is not None:
                    raise RuntimeError(
                        f"aw {self.command} exited with {self.proc.returncode}; see {self.log_path}"
                    )
                try:
                    if (await client.get(f"{url}/healthz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError(f"aw {self.command} did not become healthy; see {self.log_path}")

    async def signal(self, sig: signal.Signals) -> None:
        """Send a signal (SIGKILL, SIGTERM, SIGSTOP, SIGCONT)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)

    async def kill(self) -> None:
        """SIGKILL and reap."""
        await self.signal(signal.SIGKILL)
        if self.proc is not None:
            await self.proc.wait()

    async def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM, wait for a graceful exit, SIGKILL if it takes too long."""
        if self.proc is None:
            return None
        await self.signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout_s)
        except TimeoutError:
            await self.kill()
            return self.proc.returncode
