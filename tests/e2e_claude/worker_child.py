"""A worker in a process of its own: build the runtime from `AW_*` settings, route one event.

Usage: python tests/e2e_claude/worker_child.py '<event json>'

Everything else comes from the environment, as for `aw worker`: `AW_DATABASE_URL`,
`AW_GITHUB_API_URL`, `AW_GITHUB_TOKEN`, `AW_AGENT=claude`, `AW_WORKSPACE_DIR`,
`AW_LEASE_S`, `AW_OWNER`, ... and the Claude CLI's own variables
(`ANTHROPIC_BASE_URL`, `CLAUDE_CONFIG_DIR`, ...), which the agent passes through.
Prints what routing did as one JSON line. Imports only the package, so it runs
from any directory; the kill test SIGKILLs its process group mid-turn.
"""

from __future__ import annotations

import asyncio
import json
import sys

from agent_workflow.config import load_settings
from agent_workflow.core.model import Event, Intent, RoundTrigger
from agent_workflow.service.runtime import open_runtime


async def main(raw: str) -> None:
    """Route the event described by `raw` once, with a runtime built from the environment."""
    fields = json.loads(raw)
    fields["intent"] = Intent(fields["intent"])
    if fields.get("round") is not None:  # a revise/repair event: what started the round
        fields["round"] = RoundTrigger(**fields["round"])
    event = Event(**fields)
    async with open_runtime(load_settings()) as runtime:
        routed = await runtime.core.router.route(event)
    print(
        json.dumps(
            {
                "action": routed.action,
                "reason": routed.reason,
                "phase": None if routed.phase is None else routed.phase.value,
                "status": None if routed.status is None else routed.status.value,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
