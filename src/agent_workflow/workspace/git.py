"""Running git as an asyncio subprocess (never blocking the event loop)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agent_workflow.core.errors import AgentWorkflowError

# Never let git stop to ask for a password or an editor: a worker has no terminal.
_NON_INTERACTIVE = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_EDITOR": "true",
    "GIT_ASKPASS": "",
    "SSH_ASKPASS": "",
    "LC_ALL": "C",  # messages we match on (e.g. "File exists") stay in English
}


class GitError(AgentWorkflowError):
    """A git command exited non-zero (the message names it; exit code and stderr are kept)."""

    def __init__(self, args: tuple[str, ...], returncode: int, stderr: str) -> None:
        """Describe the failed command."""
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"git {' '.join(args)} failed ({returncode}): {stderr.strip()}")


@dataclass(frozen=True)
class Git:
    """A git executable with extra environment (credentials helpers, SSH command, ...)."""

    executable: str = "git"
    env: Mapping[str, str] | None = None

    async def run(
        self,
        *args: str,
        cwd: Path | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> str:
        """Run `git args...` and return its stdout; raise `GitError` on failure when `check`."""
        code, out, err = await self.run_full(*args, cwd=cwd, env=env)
        if check and code != 0:
            raise GitError(args, code, err)
        return out

    async def run_full(
        self, *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None
    ) -> tuple[int, str, str]:
        """Run `git args...` and return (exit code, stdout, stderr) without raising."""
        full_env = {**os.environ, **_NON_INTERACTIVE, **(self.env or {}), **(env or {})}
        proc = await asyncio.create_subprocess_exec(
            self.executable,
            *args,
            cwd=cwd,
            env=full_env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await proc.communicate()
        except asyncio.CancelledError:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        code = proc.returncode if proc.returncode is not None else -1
        return code, out.decode(errors="replace"), err.decode(errors="replace")
