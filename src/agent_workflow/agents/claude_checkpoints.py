"""The hook that checkpoints the worktree after a Claude tool call that may have changed files.

`PostToolUse` of the editing tools (and Bash, which can write anything) calls the
run's saver (`PhaseWork.checkpoint`, see `workspace.checkpoints`). The CLI waits for
the hook, so the checkpoint is on the remote before the model's next turn starts; a
save that finds the files unchanged pushes nothing. A failed save (the remote, a lost
lease) is logged and the run goes on: a checkpoint only shortens a takeover's work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from claude_agent_sdk import HookMatcher
from claude_agent_sdk.types import HookContext, HookEvent, HookInput, HookJSONOutput

log = structlog.get_logger(__name__)

# The tools after which the worktree may differ.
EDITING_TOOLS = ("Write", "Edit", "MultiEdit", "NotebookEdit", "Bash")
# A push to a slow remote must not be cut off by the hook's default 60 s.
_HOOK_TIMEOUT_S = 300.0


def checkpoint_hooks(
    save: Callable[[], Awaitable[object]] | None,
) -> dict[HookEvent, list[HookMatcher]]:
    """The `PostToolUse` hook calling `save` after an editing tool; none without `save`."""
    if save is None:
        return {}

    async def checkpoint(
        data: HookInput, tool_use_id: str | None, context: HookContext
    ) -> HookJSONOutput:
        try:
            await save()
        except Exception as exc:  # never the agent's failure
            log.warning("checkpoint.save_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        return {}

    matcher = HookMatcher(
        matcher="|".join(EDITING_TOOLS), hooks=[checkpoint], timeout=_HOOK_TIMEOUT_S
    )
    return {"PostToolUse": [matcher]}
