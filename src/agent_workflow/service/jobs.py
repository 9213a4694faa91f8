"""The two kinds of queue job, their ids and payloads. The queue only delivers them."""

from __future__ import annotations

from typing import Any

from agent_workflow.core.model import Phase
from agent_workflow.queue.protocol import safe_job_id

ROUTE = "route"
PHASE = "phase"


def route_job(delivery_id: str, hook_id: str) -> tuple[str, dict[str, Any]]:
    """Route a stored delivery. The job id is the delivery id (BullMQ dedups on it)."""
    raw = delivery_id if not hook_id else f"{delivery_id}.{hook_id}"
    return safe_job_id(raw), {"kind": ROUTE, "delivery_id": delivery_id, "hook_id": hook_id}


def phase_job(task_id: int, phase: Phase, fence: int) -> tuple[str, dict[str, Any]]:
    """Drive one phase from its recovery point (the sweeper's job); one id per fence seen."""
    return (
        safe_job_id(f"phase-{task_id}-{phase.value}-{fence}"),
        {"kind": PHASE, "task_id": task_id, "phase": phase.value},
    )
