"""Job queues that deliver at least once: an in-process dispatcher and BullMQ.

The queue only delivers; the database is the source of truth and handlers are
idempotent (DESIGN §3, §6). The BullMQ backend lives in
`agent_workflow.queue.bullmq_backend` (imported on demand: it pulls in Redis).
"""

from agent_workflow.queue.embedded import EmbeddedQueue
from agent_workflow.queue.protocol import (
    Handler,
    InvalidJobId,
    JobQueue,
    QueueClosed,
    safe_job_id,
    validate_job_id,
)

__all__ = [
    "EmbeddedQueue",
    "Handler",
    "InvalidJobId",
    "JobQueue",
    "QueueClosed",
    "safe_job_id",
    "validate_job_id",
]
