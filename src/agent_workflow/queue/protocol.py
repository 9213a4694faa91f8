"""The `JobQueue` protocol, the handler type, and the job-id rules every backend shares.

A queue only *delivers*: the database is the source of truth, and handling a job
is idempotent, so every backend may deliver a job more than once (DESIGN §3, §6).

Job ids: both backends accept exactly the same ids, so code that works on the
embedded queue works on BullMQ. BullMQ forbids `:` in a custom job id (it is
the key separator: `<prefix>:<queue>:<id>:lock`) and all-digit ids (they
collide with the ids BullMQ generates from its counter); the Python port does
not check either, so `validate_job_id` does. Callers holding an arbitrary
string use `safe_job_id`, an injective mapping onto valid ids.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from agent_workflow.core.errors import AgentWorkflowError

Handler = Callable[[dict[str, Any]], Awaitable[None]]
"""Handles one job's data. Must be idempotent: a job may be delivered more than once."""

MAX_JOB_ID_LENGTH = 200
"""Keeps Redis keys and log lines short; our ids (delivery GUIDs, `phase-3-plan`) are < 64."""


class InvalidJobId(AgentWorkflowError, ValueError):
    """A job id is empty, too long, contains `:` or is all digits (see the module docstring)."""


class QueueClosed(AgentWorkflowError):
    """`enqueue` was called on a queue after `close()` started."""


def validate_job_id(job_id: str) -> str:
    """Return `job_id` unchanged if every backend accepts it, else raise `InvalidJobId`."""
    if not job_id:
        raise InvalidJobId("job id is empty")
    if len(job_id) > MAX_JOB_ID_LENGTH:
        raise InvalidJobId(f"job id longer than {MAX_JOB_ID_LENGTH} characters: {job_id[:40]}…")
    if ":" in job_id:
        raise InvalidJobId(f"job id contains ':' (BullMQ's key separator): {job_id!r}")
    if job_id.isdigit():
        raise InvalidJobId(f"job id is all digits (BullMQ reserves those): {job_id!r}")
    return job_id


def safe_job_id(raw: str) -> str:
    """Map any non-empty string to a valid job id, injectively and deterministically.

    `%` becomes `%25` and `:` becomes `%3A`; an all-digit result gets the prefix
    `%N` (a `%` followed by `N` never comes out of the escaping, so no two inputs
    collide). Strings that are already valid and contain no `%` map to themselves.
    """
    escaped = raw.replace("%", "%25").replace(":", "%3A")
    if escaped.isdigit():
        escaped = "%N" + escaped
    return validate_job_id(escaped)


@runtime_checkable
class JobQueue(Protocol):
    """Delivers jobs to a handler at least once; an id already queued or running is not added twice."""

    async def enqueue(
        self, job_id: str, data: dict[str, Any], *, replace_finished: bool = False
    ) -> None:
        """Queue `data` under `job_id` unless a job with that id is queued or running.

        `replace_finished=True` is for re-enqueueing work the queue already gave
        up on or finished (the sweeper, DESIGN §4.5): a *finished* job kept under
        that id (completed, or failed e.g. "job stalled more than allowable
        limit") is replaced by a fresh one instead of silently absorbing the call.
        Raises `InvalidJobId` for an id some backend would refuse, and
        `QueueClosed` after `close()`.
        """
        ...

    async def close(self) -> None:
        """Stop accepting jobs and release resources (each backend documents its waiting)."""
        ...
