"""Run the `aw` command line as a user would: a real subprocess, bounded in time."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path


async def run_aw(
    *args: str, env: dict[str, str], cwd: Path | None = None, deadline_s: float = 60.0
) -> tuple[int, str, str]:
    """`python -m agent_workflow.cli ARGS` with exactly `env`; returns (exit code, stdout, stderr).

    A process still running at the deadline is killed, and the timeout raised.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent_workflow.cli",
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), deadline_s)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
