"""How many jobs a queue holds, by state, for the `aw_queue_jobs` gauge (read per scrape)."""

from __future__ import annotations

from collections.abc import Mapping

from agent_workflow.queue.embedded import EmbeddedQueue
from agent_workflow.queue.protocol import JobQueue
from agent_workflow.telemetry.exposition import QueueDepth

# BullMQ's states that hold work still to do (or given up on: failed jobs are kept).
BULL_STATES = ("waiting", "active", "delayed", "prioritized", "failed")


def queue_depth(queue: JobQueue) -> QueueDepth | None:
    """A reader of `queue`'s depth; None for a queue that cannot say."""
    if isinstance(queue, EmbeddedQueue):
        embedded = queue

        async def in_process() -> Mapping[str, int]:
            running = len(embedded.running)
            return {"queued": len(embedded.in_flight) - running, "running": running}

        return in_process
    from agent_workflow.queue.bullmq_backend import BullQueue

    if isinstance(queue, BullQueue):
        bull = queue

        async def in_redis() -> Mapping[str, int]:
            counts = await bull.counts()
            return {state: int(counts.get(state, 0)) for state in BULL_STATES}

        return in_redis
    return None
