"""One run of the Claude Code CLI through claude-agent-sdk, killable on cancellation.

The SDK's own clean-up, when the task running it is cancelled, first waits for
the CLI to finish on its own (seconds, mid-turn) and can be cut short by the
cancellation itself. The transport here stops the CLI at once instead (SIGTERM,
then the SDK's escalation to SIGKILL), so a worker that loses its lease leaves
no CLI behind.

Environment: the SDK starts the CLI with this process's environment under
`options.env`, so the transport also unsets every variable of this process
that `options.env` does not name (`env -u NAME ...`: names on the command
line, never values). The CLI sees `options.env` (built from the allowlist in
`agent_env`) and the few variables the SDK sets itself, nothing of the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
from collections.abc import AsyncGenerator
from typing import cast

import structlog
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKError,
    Message,
    MirrorErrorMessage,
    ResultError,
    ResultMessage,
    TextBlock,
    query,
)
from claude_agent_sdk._internal.transport.subprocess_cli import SubprocessCLITransport

from agent_workflow.agents.claude_result import RunLog
from agent_workflow.core.progress import report_progress

_log = structlog.get_logger(__name__)

# A CLI orphaned by a SIGKILLed worker would go on answering (and spending) beside the
# takeover's resume of the same session (G2). On Linux, `setpriv --pdeathsig` has the
# kernel kill the CLI when its parent dies, however it dies.
_SETPRIV = shutil.which("setpriv") if sys.platform.startswith("linux") else None
_ENV = shutil.which("env")

# What the SDK itself sets for the CLI after merging the environments (kept, not unset).
_SDK_SET = frozenset(
    {
        "PWD",
        "CLAUDE_CODE_ENTRYPOINT",
        "CLAUDE_AGENT_SDK_VERSION",
        "CLAUDE_AGENT_SDK_CLIENT_APP",
        "CLAUDE_AGENT_SDK_DERIVED_CLIENT_APP",
        "CLAUDE_CODE_SDK_READS_SESSION_STATE",
        "CLAUDE_CODE_ENABLE_SDK_FILE_CHECKPOINTING",
    }
)


def unset_worker_env(options_env: dict[str, str]) -> list[str]:
    """`env -u NAME ... --`: drops every variable of this process that `options_env` lacks."""
    if _ENV is None:
        raise RuntimeError("no `env` program: cannot keep the worker's environment from the CLI")
    drop = sorted(k for k in os.environ if k not in options_env and k not in _SDK_SET)
    return [_ENV, *(a for name in drop for a in ("-u", name)), "--"]


class _StoppableTransport(SubprocessCLITransport):
    """The SDK's subprocess transport: the CLI dies with its worker, and stops on cancel."""

    def _build_command(self) -> list[str]:
        # Built in `connect` right before the SDK reads os.environ (no await between).
        command = [*unset_worker_env(self._options.env), *super()._build_command()]
        if _SETPRIV is None:
            return command
        return [_SETPRIV, "--pdeathsig", "KILL", "--", *command]

    async def close(self) -> None:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            self.terminate()
        await super().close()

    def terminate(self) -> None:
        """Ask the CLI to stop now (no-op once it has exited)."""
        process = getattr(self, "_process", None)
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()


def _collect(log: RunLog, message: Message) -> None:
    if log.progress.see(message):
        report_progress(log.progress.progress())
    if isinstance(message, AssistantMessage) and message.parent_tool_use_id is None:
        text = "".join(b.text for b in message.content if isinstance(b, TextBlock))
        if text.strip():
            log.last_text = text
    elif isinstance(message, ResultMessage):
        log.result = message
    elif isinstance(message, MirrorErrorMessage):  # the run goes on; a takeover elsewhere
        # would find this batch missing from the database's copy of the transcript
        _log.warning("session_store.append_failed", error=message.error[:300])


async def run_cli(prompt: str, options: ClaudeAgentOptions, log: RunLog) -> RunLog:
    """Run the CLI to its end, filling `log`; SDK errors are recorded, not raised.

    Cancellation is re-raised after the CLI has been stopped.
    """
    transport = _StoppableTransport(prompt=prompt, options=options)
    stream = cast(
        AsyncGenerator[Message, None], query(prompt=prompt, options=options, transport=transport)
    )
    try:
        async for message in stream:
            _collect(log, message)
    except ResultError as exc:  # the CLI exits non-zero after an error result
        if log.result is None:
            log.error = str(exc)
    except ClaudeSDKError as exc:
        log.error = str(exc)
    finally:
        await stream.aclose()
    return log
