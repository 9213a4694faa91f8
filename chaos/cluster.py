"""The processes under test: one `aw serve` and N `aw worker`s, killable, stoppable, restartable.

Each worker incarnation gets its own lease owner name (`AW_OWNER`,
`chaos-w<i>-g<generation>`) so the database tells which process held what,
and its own scripted-agent seed. A worker that exits without being killed by
the harness is restarted too, and recorded as an unexpected exit.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass, field
from pathlib import Path

from agent_workflow.demo.process import AwProcess

MONITOR_INTERVAL_S = 0.5
"""How often the monitor looks for workers that exited by themselves."""

STOP_TIMEOUT_S = 15.0
"""Graceful stop at the end of a run: SIGTERM, then SIGKILL after this long."""


@dataclass
class WorkerSlot:
    """One worker position; its process is replaced on every restart."""

    index: int
    generation: int = 0
    process: AwProcess | None = None
    owner: str = ""
    stopped: bool = False
    killing: bool = False
    owners: list[str] = field(default_factory=list)
    """Every owner name this slot has had, oldest first."""

    @property
    def alive(self) -> bool:
        """True while the current process runs (a stopped process counts as alive)."""
        proc = self.process.proc if self.process is not None else None
        return proc is not None and proc.returncode is None


@dataclass(frozen=True)
class UnexpectedExit:
    """A process that exited without being asked to."""

    owner: str
    returncode: int | None
    log_path: Path


class Cluster:
    """`aw serve` plus workers, sharing one environment; the harness owns their signals."""

    def __init__(self, workdir: Path, env: dict[str, str], workers: int, seed: int) -> None:
        self.workdir = workdir
        self.env = env
        self.seed = seed
        self.serve = AwProcess("serve", {**env, "AW_OWNER": "chaos-serve"}, workdir / "serve.log")
        self.slots = [WorkerSlot(i) for i in range(workers)]
        self.unexpected_exits: list[UnexpectedExit] = []
        self._monitor: asyncio.Task[None] | None = None
        self._serve_url = ""

    async def start(self, serve_url: str) -> None:
        """Start `aw serve` (wait for /healthz: it migrates the schema), then the workers."""
        self._serve_url = serve_url
        await self.serve.start()
        await self.serve.wait_healthy(serve_url, timeout_s=60.0)
        for slot in self.slots:
            await self._spawn(slot)
        self._monitor = asyncio.create_task(self._watch(), name="chaos-monitor")

    async def _spawn(self, slot: WorkerSlot) -> None:
        slot.generation += 1
        slot.owner = f"chaos-w{slot.index}-g{slot.generation}"
        slot.owners.append(slot.owner)
        env = {
            **self.env,
            "AW_OWNER": slot.owner,
            "AW_SCRIPTED_SEED": str(self.seed * 1000 + slot.index * 100 + slot.generation),
        }
        slot.process = AwProcess("worker", env, self.workdir / f"worker-{slot.index}.log")
        slot.stopped = False
        await slot.process.start()

    def running_owners(self) -> dict[str, WorkerSlot]:
        """Owner name → slot, for workers alive and not stopped."""
        return {s.owner: s for s in self.slots if s.alive and not s.stopped and not s.killing}

    async def kill(self, slot: WorkerSlot) -> str:
        """SIGKILL the slot's process (it may hold leases and BullMQ locks); returns its owner."""
        assert slot.process is not None
        slot.killing = True
        owner = slot.owner
        await slot.process.kill()
        return owner

    async def restart(self, slot: WorkerSlot) -> str:
        """Start a new incarnation of the slot; returns its owner name."""
        await self._spawn(slot)
        slot.killing = False
        return slot.owner

    async def stop(self, slot: WorkerSlot) -> None:
        """SIGSTOP: the process freezes with its connections, leases and locks."""
        assert slot.process is not None
        slot.stopped = True
        await slot.process.signal(signal.SIGSTOP)

    async def cont(self, slot: WorkerSlot) -> None:
        """SIGCONT: the frozen process wakes up as a zombie of its old leases."""
        assert slot.process is not None
        await slot.process.signal(signal.SIGCONT)
        slot.stopped = False

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(MONITOR_INTERVAL_S)
            proc = self.serve.proc
            if proc is not None and proc.returncode is not None:
                # Webhooks sent while it is down are lost (GitHub does not retry): a finding.
                self.unexpected_exits.append(
                    UnexpectedExit("chaos-serve", proc.returncode, self.serve.log_path)
                )
                await self.serve.start()
                await self.serve.wait_healthy(self._serve_url, timeout_s=60.0)
            for slot in self.slots:
                if slot.killing or slot.alive or slot.process is None:
                    continue
                proc = slot.process.proc
                self.unexpected_exits.append(
                    UnexpectedExit(
                        slot.owner, proc.returncode if proc else None, slot.process.log_path
                    )
                )
                await self._spawn(slot)

    async def shutdown(self) -> None:
        """Stop the monitor, wake stopped workers, SIGTERM everything (SIGKILL if it lingers)."""
        if self._monitor is not None:
            self._monitor.cancel()
            await asyncio.gather(self._monitor, return_exceptions=True)
        for slot in self.slots:
            if slot.stopped and slot.process is not None:
                await self.cont(slot)
        stops = [s.process.stop(STOP_TIMEOUT_S) for s in self.slots if s.process is not None]
        await asyncio.gather(*stops, return_exceptions=True)
        await self.serve.stop(STOP_TIMEOUT_S)
