"""The lease a piece of work runs under, visible to every layer that sends a mutation.

The heartbeat confirms the phase lease in the database; between beats the holder
knows its lease is good until `confirmed_until`. A process frozen past that point
(SIGSTOP, a VM pause, a long wait for a rate limit) must not send a mutation when
it wakes, even before its next heartbeat learns that the lease is gone (G5). So
every mutation (GitHub requests, git pushes) is checked against it right before
it is sent. Work outside any lease (tests, hints) is not checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from agent_workflow.core.errors import LeaseLost


@dataclass
class LeaseWatch:
    """How long the current holder's lease is known to be valid."""

    confirmed_until: float
    clock: Callable[[], float]
    # Slack for the time between the check and the request arriving; a late check
    # only hands the work to another worker, never the other way round.
    margin_s: float

    def confirm(self, until: float) -> None:
        """A heartbeat extended the lease to `until`."""
        self.confirmed_until = until

    def check(self) -> None:
        """Raise `LeaseLost` unless the lease is still known to be ours."""
        if self.clock() > self.confirmed_until - self.margin_s:
            raise LeaseLost("the lease may have expired while this worker was not running")


_current: ContextVar[LeaseWatch | None] = ContextVar("agent_workflow_lease", default=None)


@contextmanager
def watching(watch: LeaseWatch) -> Iterator[None]:
    """Make `watch` the lease of tasks created inside this block (they copy the context)."""
    token = _current.set(watch)
    try:
        yield
    finally:
        _current.reset(token)


def assert_lease_held() -> None:
    """Call right before sending a mutation: raises `LeaseLost` if the lease may be gone."""
    watch = _current.get()
    if watch is not None:
        watch.check()
