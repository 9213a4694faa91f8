"""Test twins for users of the package: a recording forge and a scripted agent.

`MemoryForge` implements the `Forge` port in memory, records every call and takes
queued faults; `ScriptedAgent` implements the `Agent` port without a model. Both
are what this project's own unit tests use; import them in yours.
"""

from agent_workflow.testing.agent import ScriptedAgent
from agent_workflow.testing.forge import MemoryForge

__all__ = ["MemoryForge", "ScriptedAgent"]
