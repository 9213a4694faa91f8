"""`CommandAgent` (AW_AGENT=command): any program as the agent.

The configured command line is split with `shlex`. The phase prompt goes to
the program's stdin, unless an argument contains a placeholder:

    {prompt}       replaced by the prompt text (as part of that one argument)
    {prompt_file}  replaced by the path of a file holding the prompt

The program runs in the phase's checkout (the same worktrees, commits and
pushes as the Claude agent: see `phase_work`). Its environment is NOT the
worker's: it is built from the allowlist of `agent_env` (PATH, locale, the
model's settings...), `CommandConfig.env_allow`, `HOME` = the agent home
(`CommandConfig.home`, default `<workspace root>/agent-home`) and
`CommandConfig.env`, never `AW_*` settings, GitHub tokens, database or Redis
URLs. These variables describing the run are added:

    AW_SESSION_ID AW_PHASE AW_ATTEMPT AW_RESUME (1/0) AW_TASK_ID AW_REPO
    AW_ISSUE_NUMBER AW_BRANCH AW_DEFAULT_BRANCH AW_WORKTREE

Outcome: stdout whose first non-blank line is `BLOCKED: <reason>` → BLOCKED
(whatever the exit code: the program said so); else exit 0 → SUCCESS with
stdout as the text; else ERROR with the exit code and the end of stderr.
Confinement (`CommandConfig.sandbox`, on unless AW_AGENT_SANDBOX=off): the program
runs under bubblewrap (`sandbox.bwrap_argv`) in every phase: the machine read-only,
the worktree (not in the plan phase) and the agent home writable, a private `/tmp`,
its own `/proc` in a new PID namespace, no network at all (`--unshare-net`; allowed
domains are a Claude-only setting), a new session, killed with the worker; the
worker's home and working directory are empty directories to it. Without a working
sandbox the phase is `BLOCKED` ("sandbox unavailable (...)") and nothing runs.
Cancellation (or `timeout_s`) stops the program's whole process group:
SIGTERM, then SIGKILL after `kill_grace_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agent_workflow.agents import agent_env, sandbox
from agent_workflow.agents.blocked import blocked_reason
from agent_workflow.agents.phase_work import PhaseWork, run_phase
from agent_workflow.core.ports import AgentRequest, AgentResult, Outcome
from agent_workflow.workspace.limiter import RunLimiter
from agent_workflow.workspace.workspace import Workspace

PROMPT = "{prompt}"
PROMPT_FILE = "{prompt_file}"

# How much of stderr explains a failure.
_STDERR_TAIL_CHARS = 2000


@dataclass(frozen=True)
class CommandConfig:
    """The program to run and how long it may take."""

    command: str
    env: Mapping[str, str] = field(default_factory=dict)  # over the allowlisted environment
    timeout_s: float | None = None  # None: as long as it takes (the lease still bounds it)
    kill_grace_s: float = 5.0  # between SIGTERM and SIGKILL
    # More names the program may take from this process's environment (AW_AGENT_ENV_ALLOW).
    env_allow: tuple[str, ...] = ()
    home: Path | None = None  # the program's HOME; None: `<workspace root>/agent-home`
    # The program runs under bubblewrap (`sandbox.bwrap_argv`); without a working one the
    # phase is blocked. False (AW_AGENT_SANDBOX=off) runs it with the worker's view of the
    # machine (its environment is still the allowlist).
    sandbox: bool = True

    def __post_init__(self) -> None:
        agent_env.check_allow(self.env_allow, "CommandConfig.env_allow")
        agent_env.check_names(self.env, "CommandConfig.env")


def session_env(work: PhaseWork) -> dict[str, str]:
    """The AW_* variables describing the run."""
    r = work.request
    return {
        "AW_SESSION_ID": r.session_id,
        "AW_PHASE": r.phase.value,
        "AW_ATTEMPT": str(r.attempt),
        "AW_RESUME": "1" if r.resume else "0",
        "AW_TASK_ID": str(r.task_id),
        "AW_REPO": r.repo,
        "AW_ISSUE_NUMBER": str(r.issue_number),
        "AW_BRANCH": r.branch,
        "AW_DEFAULT_BRANCH": r.default_branch,
        "AW_WORKTREE": str(work.cwd),
    }


class CommandAgent:
    """An `Agent` that runs a configured program once per phase attempt."""

    def __init__(
        self, workspace: Workspace, config: CommandConfig, limiter: RunLimiter | None = None
    ) -> None:
        """Run `config.command` in checkouts of `workspace`; `limiter` bounds concurrent runs."""
        if not shlex.split(config.command):
            raise ValueError("the agent command is empty")
        self._workspace = workspace
        self._config = config
        self._limiter = limiter

    async def run(self, request: AgentRequest) -> AgentResult:
        """Run the program for the phase in its checkout; commit and push what it produced."""
        return await run_phase(request, self._workspace, self._session, self._limiter)

    async def _session(self, work: PhaseWork) -> AgentResult:
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="aw-prompt-") as tmp:
            prompt_file = Path(tmp) / "prompt.md"
            await asyncio.to_thread(prompt_file.write_text, work.prompt, encoding="utf-8")
            argv, on_stdin = _argv(self._config.command, work.prompt, prompt_file)
            home = self._config.home or self._workspace.root / agent_env.AGENT_HOME_DIRNAME
            await asyncio.to_thread(agent_env.prepare_home, home)
            env = agent_env.build(home, explicit=self._config.env, allow=self._config.env_allow)
            env.update(session_env(work))
            if self._config.sandbox:
                why = await asyncio.to_thread(sandbox.unavailable, env.get("PATH"))
                if why is not None:
                    return _unconfined(work.request, why)
                argv = _confined(argv, work, env, home, Path(tmp), self._workspace.root)
            code, out, err = await self._execute(
                argv, work.cwd, env, work.prompt if on_stdin else None
            )
        return _result(work.request, code, out, err, time.monotonic() - started)

    async def _execute(
        self, argv: list[str], cwd: Path, env: Mapping[str, str], stdin: str | None
    ) -> tuple[int | None, str, str]:
        """Run to completion; (None, ...) on timeout. Cancellation kills the process group."""
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group, so children die with it
        )
        data = stdin.encode() if stdin is not None else None
        try:
            async with asyncio.timeout(self._config.timeout_s):
                out, err = await proc.communicate(data)
        except TimeoutError:
            await _stop(proc, self._config.kill_grace_s)
            return None, "", ""
        except asyncio.CancelledError:
            await asyncio.shield(_stop(proc, self._config.kill_grace_s))
            raise
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def _confined(
    argv: list[str], work: PhaseWork, env: Mapping[str, str], home: Path, tmp: Path, root: Path
) -> list[str]:
    """`argv` under bubblewrap: the worktree (not in the read-only plan) and the agent home
    writable, the prompt file and the workspace readable, the worker's own directories not."""
    bwrap = shutil.which("bwrap", path=env.get("PATH"))
    if bwrap is None:  # the probe found it on the same PATH
        raise RuntimeError("bwrap vanished after the sandbox probe")
    hidden, _ = sandbox.worker_private_dirs(root)
    writable = [home] if work.read_only else [work.cwd, home]
    return sandbox.bwrap_argv(
        bwrap, argv, cwd=work.cwd, writable=writable, readable=[root, tmp], hidden=hidden
    )


def _unconfined(request: AgentRequest, why: str) -> AgentResult:
    """The result of a run refused for want of a sandbox (the program never started)."""
    return AgentResult(
        Outcome.BLOCKED,
        reason=sandbox.blocked_reason(why),
        session_id=request.session_id,
        terminal_reason="sandbox_unavailable",
    )


def _argv(command: str, prompt: str, prompt_file: Path) -> tuple[list[str], bool]:
    """The argument vector, and whether the prompt still has to go to stdin."""
    args = shlex.split(command)
    placed = any(PROMPT in a or PROMPT_FILE in a for a in args)
    args = [a.replace(PROMPT_FILE, str(prompt_file)).replace(PROMPT, prompt) for a in args]
    return args, not placed


async def _stop(proc: asyncio.subprocess.Process, grace_s: float) -> None:
    """SIGTERM the process group, SIGKILL it if it is still there after `grace_s`."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, None)):
        if proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                await proc.wait()


def _outcome(code: int | None, text: str, err: str) -> tuple[Outcome, str, str]:
    """(outcome, reason, terminal reason) of a finished program."""
    if code is None:
        return Outcome.ERROR, "command timed out", "timeout"
    reason = blocked_reason(text)
    if reason is not None:
        return Outcome.BLOCKED, reason, f"exit {code}"
    if code == 0:
        return Outcome.SUCCESS, "", "exit 0"
    tail = err.strip()[-_STDERR_TAIL_CHARS:]
    return (
        Outcome.ERROR,
        f"command exited with {code}" + (f": {tail}" if tail else ""),
        f"exit {code}",
    )


def _result(
    request: AgentRequest, code: int | None, out: str, err: str, duration_s: float
) -> AgentResult:
    text = out.rstrip()
    outcome, reason, terminal = _outcome(code, text, err)
    return AgentResult(
        outcome,
        text=text,
        reason=reason,
        session_id=request.session_id,
        duration_s=duration_s,
        terminal_reason=terminal,
    )
