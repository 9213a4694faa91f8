"""Running git as an asyncio subprocess (never blocking the event loop).

Every command runs fenced off from configuration the worker does not own: the
system and global config files are ignored, and settings given on the command
line (through `GIT_CONFIG_COUNT`, which beats every config file, the shared
clone's included) turn hooks, fsmonitor, credential helpers and pagers off. An
agent can write the clone's config from its worktree (`git config ...`); none of
those settings then runs anything in the worker's git.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping, Sequence
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
    "GIT_CONFIG_NOSYSTEM": "1",  # /etc/gitconfig is not ours
    "GIT_CONFIG_GLOBAL": "/dev/null",  # nor is ~/.gitconfig (helpers, hooks, aliases)
    "GIT_NO_REPLACE_OBJECTS": "1",  # refs/replace/* (pushable by anyone) never rewrites history
}

# Settings that beat the repository's own config: nothing it holds runs a program.
SAFE_CONFIG: tuple[tuple[str, str], ...] = (
    ("core.hooksPath", "/dev/null"),  # no hook of any kind, wherever it was planted
    ("core.fsmonitor", "false"),  # a planted fsmonitor command would run on add/status
    ("core.sshCommand", "false"),
    ("core.pager", "cat"),
    ("core.askPass", ""),
    ("credential.helper", ""),  # an empty value clears the list: no helper is asked
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("gc.auto", "0"),  # no background gc holding ref locks after a command returns
    ("maintenance.auto", "false"),
)

# Inherited variables that would add configuration or redirect git: dropped.
_DROPPED_PREFIXES = ("GIT_CONFIG", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_EXEC_PATH")
_DROPPED = {
    "GIT_ALLOW_PROTOCOL",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_PROXY_COMMAND",
    "GIT_EXTERNAL_DIFF",
    "GIT_PAGER",
}


def is_local_url(url: str) -> bool:
    """True when `url` names a local repository (a path or `file://`), not a network remote."""
    return url.startswith("file://") or ("://" not in url and not re.match(r"^[^/]+@[^/]+:", url))


def transport_env(url: str) -> dict[str, str]:
    """The protocols a fetch or push of `url` may use: https, plus `file` for a local path.

    `GIT_ALLOW_PROTOCOL` overrides every `protocol.*.allow` setting, so a planted
    `protocol.ext.allow=always` in the clone's config allows nothing.
    """
    return {"GIT_ALLOW_PROTOCOL": "https:file" if is_local_url(url) else "https"}


def config_env(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """`GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n` giving `pairs` to git."""
    env = {"GIT_CONFIG_COUNT": str(len(pairs))}
    for i, (key, value) in enumerate(pairs):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


def base_env() -> dict[str, str]:
    """`os.environ` without the variables that would add config or redirect git."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_DROPPED_PREFIXES) and k not in _DROPPED
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
    """A git executable with extra environment (never configuration: see `config` of `run`)."""

    executable: str = "git"
    env: Mapping[str, str] | None = None

    async def run(
        self,
        *args: str,
        cwd: Path | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        config: Sequence[tuple[str, str]] = (),
    ) -> str:
        """Run `git args...` and return its stdout; raise `GitError` on failure when `check`.

        `config` is added to `SAFE_CONFIG` (both beat every config file).
        """
        code, out, err = await self.run_full(*args, cwd=cwd, env=env, config=config)
        if check and code != 0:
            raise GitError(args, code, err)
        return out

    async def run_full(
        self,
        *args: str,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        config: Sequence[tuple[str, str]] = (),
    ) -> tuple[int, str, str]:
        """Run `git args...` and return (exit code, stdout, stderr) without raising."""
        full_env = {
            **base_env(),
            **(self.env or {}),
            **(env or {}),
            **_NON_INTERACTIVE,
            **config_env([*SAFE_CONFIG, *config]),
        }
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
