"""The store: all SQL lives here, split by aggregate."""

from agent_workflow.store.db import Store, connect

__all__ = ["Store", "connect"]
