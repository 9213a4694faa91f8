"""The sandbox the agent's shell runs in: a probe, Claude Code's settings, bubblewrap for commands.

Deliver and compound run shell commands the model chose, from text an attacker
may have written (the issue, the repository). They run confined (Linux: bubblewrap
for the filesystem and namespaces, socat for Claude Code's network proxy):

- Claude (`claude_settings`): Claude Code's own sandbox for `Bash`, with no
  unsandboxed escape (`allowUnsandboxedCommands: false`, no excluded commands,
  `failIfUnavailable`), writes only in the worktree (and the CLI's own temporary
  directory), network only to the allowed domains (`AW_AGENT_ALLOWED_DOMAINS`,
  default none), and the worker's home unreadable.
- A command (`bwrap_argv`): the whole program under bubblewrap: the root
  read-only, the worktree and the agent home writable, a private `/tmp`, its own
  `/proc` in a new PID namespace (the worker's `/proc/<pid>/environ` is not
  there), no network at all, a new session, killed with its parent.

`unavailable` probes once per process (per PATH) whether bubblewrap can make its
namespaces here; without a working sandbox an editing phase is blocked
(`SANDBOX_UNAVAILABLE`) instead of running the agent unconfined, unless the
operator turned the sandbox off explicitly (`AW_AGENT_SANDBOX=off`).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

from claude_agent_sdk.types import SandboxSettings

SANDBOX_UNAVAILABLE = "sandbox unavailable"
_PROBE_TIMEOUT_S = 10.0


def blocked_reason(why: str) -> str:
    """The reason of a phase blocked for want of a sandbox."""
    return f"{SANDBOX_UNAVAILABLE} ({why})"


@functools.lru_cache(maxsize=8)
def unavailable(path: str | None) -> str | None:
    """Why the sandbox cannot run with `path` as PATH (None: it can). Cached per process.

    Runs bubblewrap once with a trivial command in the namespaces a sandbox needs.
    """
    bwrap = shutil.which("bwrap", path=path)
    if bwrap is None:
        return "bubblewrap (bwrap) not found"
    if shutil.which("socat", path=path) is None:
        return "socat not found"
    probe = [bwrap, *_BASE_ARGS, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"]
    try:
        done = subprocess.run(
            probe, capture_output=True, timeout=_PROBE_TIMEOUT_S, check=False, env={}
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap did not run: {type(exc).__name__}"
    if done.returncode != 0:
        return f"bwrap cannot create namespaces (exit {done.returncode})"
    return None


def parse_domains(value: str) -> tuple[str, ...]:
    """The domains of a comma-separated list (`AW_AGENT_ALLOWED_DOMAINS`)."""
    return tuple(d.strip() for d in value.split(",") if d.strip())


def claude_settings(
    allowed_domains: Iterable[str] = (),
    deny_read: Iterable[Path] = (),
    allow_read: Iterable[Path] = (),
) -> SandboxSettings:
    """Claude Code's `sandbox` settings: every Bash command sandboxed, no way out.

    `deny_read`: directories commands cannot read; `allow_read`: inside those, what
    they still can (the workspace, when it lives in a denied directory).
    """
    settings: dict[str, Any] = {
        "enabled": True,
        # The CLI's default without bwrap/socat is a warning and unsandboxed commands.
        "failIfUnavailable": True,
        "autoAllowBashIfSandboxed": True,
        # `dangerouslyDisableSandbox: true` on a Bash call is refused, not honoured.
        "allowUnsandboxedCommands": False,
        "excludedCommands": [],
        "network": {"allowedDomains": list(allowed_domains)},
        "filesystem": {
            "denyRead": [str(p) for p in deny_read],
            "allowRead": [str(p) for p in allow_read],
        },
    }
    return cast(SandboxSettings, settings)


# Namespaces and process hygiene shared by the probe and the command agent.
_BASE_ARGS = (
    "--unshare-all",  # user, ipc, pid, net, uts, cgroup: no network, its own /proc
    "--die-with-parent",
    "--new-session",  # no TIOCSTI into the worker's terminal
)


def bwrap_argv(
    bwrap: str,
    argv: list[str],
    *,
    cwd: Path,
    writable: Iterable[Path],
    readable: Iterable[Path] = (),
    hidden: Iterable[Path] = (),
) -> list[str]:
    """`argv` under bubblewrap: the root read-only, a private `/tmp` and `/proc`, `hidden`
    directories empty, then `readable` paths visible read-only and `writable` ones writable
    (in that order, so they show through `/tmp` and `hidden`), no network.

    The environment is bubblewrap's own (start it with the agent's), never on its command
    line, where other processes could read it.
    """
    args = [bwrap, *_BASE_ARGS, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    args += ["--tmpfs", "/tmp"]
    for path in hidden:
        args += ["--tmpfs", os.path.realpath(path)]
    for path in readable:
        real = os.path.realpath(path)
        args += ["--ro-bind", real, real]
    for path in writable:
        real = os.path.realpath(path)
        args += ["--bind", real, real]
    args += ["--chdir", os.path.realpath(cwd), "--", *argv]
    return args


def worker_private_dirs(workspace: Path) -> tuple[list[Path], list[Path]]:
    """(directories of the worker commands must not read, what they may read inside them).

    The worker's home (`~/.git-credentials`, `~/.config/gh`, `~/.ssh`...) and its working
    directory (`agent-workflow.toml`, the SQLite database, `.env`) are denied; the
    workspace is re-allowed when it lives inside one of them (its default does).
    """
    denied: list[Path] = []
    for path in (Path.home(), Path.cwd()):
        real = Path(os.path.realpath(path))
        if real != Path("/") and real not in denied:
            denied.append(real)
    root = Path(os.path.realpath(workspace))
    allowed = [root] if any(root.is_relative_to(d) for d in denied) else []
    return denied, allowed
