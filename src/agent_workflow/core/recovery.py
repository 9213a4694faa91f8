"""Recovery points: where a phase run stands, and so what the next worker does with it.

One function, `recovery_point`, decides it from the row and the time. The router's
fast path, the runner and the store's conditional statements all follow it: the
store's SQL mirrors it column for column (`agent_workflow.store.phase_runs`), and a
test seeds every combination of status, lease and effects on both engines and checks
that the claims succeed exactly where this function says they may.
"""

from __future__ import annotations

from enum import StrEnum

from agent_workflow.core.model import PhaseRun, PhaseStatus


class RecoveryPoint(StrEnum):
    """What a phase run needs next."""

    CLAIMABLE = "claimable"  # pending, or active whose holder's lease expired: run the agent
    HELD_ELSEWHERE = "held_elsewhere"  # active under a live lease: its holder runs the agent (G2)
    EFFECTS_OUTSTANDING = "effects_outstanding"  # final, effects not all done, lease free
    EFFECTS_HELD_ELSEWHERE = "effects_held_elsewhere"  # final; a live holder performs the effects
    SETTLED = "settled"  # final and every effect done: nothing left to do

    @property
    def is_busy(self) -> bool:
        """True while another worker holds the run under a live lease."""
        return self in (RecoveryPoint.HELD_ELSEWHERE, RecoveryPoint.EFFECTS_HELD_ELSEWHERE)


def lease_free(lease_until: float | None, now: float) -> bool:
    """A lease is free when there is none or it ended before `now` (SQL: `IS NULL OR < now`)."""
    return lease_until is None or lease_until < now


def recovery_point(run: PhaseRun, now: float) -> RecoveryPoint:
    """The recovery point of `run` at time `now`."""
    free = lease_free(run.lease_until, now)
    match run.status:
        case PhaseStatus.PENDING:
            return RecoveryPoint.CLAIMABLE
        case PhaseStatus.ACTIVE:
            return RecoveryPoint.CLAIMABLE if free else RecoveryPoint.HELD_ELSEWHERE
        case PhaseStatus.COMPLETE | PhaseStatus.BLOCKED | PhaseStatus.FAILED:
            if run.effects_done:
                return RecoveryPoint.SETTLED
            return (
                RecoveryPoint.EFFECTS_OUTSTANDING if free else RecoveryPoint.EFFECTS_HELD_ELSEWHERE
            )
        case _:  # pragma: no cover - a new status without a point is a loud bug
            raise AssertionError(f"no recovery point for status {run.status!r}")
