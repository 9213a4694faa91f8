"""Run one ClaudeAgent phase in a process of its own (a worker the resume test can SIGKILL).

Usage: python -m tests.agents.agent_child '<json>' where the JSON holds
`workspace` (root dir), `env` (the CLI environment) and `request` (AgentRequest
fields). Prints the AgentResult as JSON when it finishes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from pathlib import Path

from agent_workflow.agents.claude import ClaudeAgent, ClaudeConfig
from agent_workflow.core.model import Phase
from agent_workflow.core.ports import AgentRequest
from agent_workflow.workspace import Workspace


async def main(spec: dict[str, object]) -> None:
    """Run the request described by `spec` and print its result."""
    fields = dict(spec["request"])  # type: ignore[call-overload]
    fields["phase"] = Phase(fields["phase"])
    request = AgentRequest(**fields)
    agent = ClaudeAgent(Workspace(Path(str(spec["workspace"]))), ClaudeConfig(env=spec["env"]))  # type: ignore[arg-type]
    result = await agent.run(request)
    print(json.dumps(dataclasses.asdict(result)), flush=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
