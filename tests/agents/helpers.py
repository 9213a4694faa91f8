"""Process helpers for agent tests."""

from __future__ import annotations

import asyncio
from pathlib import Path


def cli_pids(session_id: str) -> list[int]:
    """Live processes whose command line names `session_id` (the CLI of that session)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            state = (proc / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if session_id in cmdline and state != "Z":
            pids.append(int(proc.name))
    return pids


async def cli_gone(session_id: str, within_s: float) -> bool:
    """True once no CLI of `session_id` runs any more, False if one is still there after `within_s`."""
    steps = int(within_s / 0.05) + 1
    for _ in range(steps):
        if not cli_pids(session_id):
            return True
        await asyncio.sleep(0.05)
    return False
