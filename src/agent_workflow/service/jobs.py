"""The two kinds of queue job, their ids and payloads. The queue only delivers them."""

from __future__ import annotations

import hashlib
from typing import Any

from agent_workflow.core.model import Phase
from agent_workflow.queue.protocol import MAX_JOB_ID_LENGTH, safe_job_id
from agent_workflow.telemetry import tracing

ROUTE = "route"
PHASE = "phase"


def route_job(delivery_id: str, hook_id: str) -> tuple[str, dict[str, Any]]:
    """Route a stored delivery. The job id is derived from (delivery, hook): BullMQ dedups on it.

    Readable ids (a GitHub GUID and hook id) are kept as they are; anything that would
    not fit a job id (a long id stored before the ingress refused them) gets `%H` and
    the SHA-256 of the pair, so no stored row can ever make a valid job id impossible.
    `%H` never comes out of `safe_job_id`'s escaping, so the two forms cannot collide.
    Inside a traced webhook the data carries its W3C `traceparent` (the id never does).
    """
    data = {"kind": ROUTE, "delivery_id": delivery_id, "hook_id": hook_id}
    data.update(tracing.trace_context())
    raw = delivery_id if not hook_id else f"{delivery_id}.{hook_id}"
    if raw and len(raw) * 3 <= MAX_JOB_ID_LENGTH:  # `%`/`:` escape to three characters
        return safe_job_id(raw), data
    digest = hashlib.sha256(f"{len(delivery_id)}:{delivery_id}.{hook_id}".encode()).hexdigest()
    return f"%H{digest}", data


def phase_job(task_id: int, phase: Phase, fence: int) -> tuple[str, dict[str, Any]]:
    """Drive one phase from its recovery point (the sweeper's job); one id per fence seen."""
    return (
        safe_job_id(f"phase-{task_id}-{phase.value}-{fence}"),
        {"kind": PHASE, "task_id": task_id, "phase": phase.value},
    )
