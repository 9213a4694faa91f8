"""Recovery points: the core's function, the store's SQL and its claims agree, point by point.

Every combination of status × lease (none, expired, live) × effects done is seeded
into a real row on both engines; then the SQL `CASE` must name the same point as
`recovery_point`, `claim` must succeed exactly on `claimable`, and `claim_effects`
exactly on `effects_outstanding` (rocket-rides-atomic's recovery points, made
checkable).
"""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import select, update

from agent_workflow.core.model import Phase, PhaseRun, PhaseStatus, TaskInfo
from agent_workflow.core.recovery import RecoveryPoint, recovery_point
from agent_workflow.store import Store
from agent_workflow.store.phase_runs import point_sql
from agent_workflow.store.schema import phase_runs

NOW = 1_000.0
LEASES = {"none": None, "expired": NOW - 1.0, "live": NOW + 30.0}
COMBINATIONS = list(itertools.product(PhaseStatus, LEASES, (False, True)))


def _run(status: PhaseStatus, lease_until: float | None, effects_done: bool) -> PhaseRun:
    return PhaseRun(
        id=1,
        task_id=1,
        phase=Phase.PLAN,
        status=status,
        attempt=1,
        fence=1,
        lease_owner="w",
        lease_until=lease_until,
        session_id=None,
        trigger_delivery="d",
        failures=0,
        effects_done=effects_done,
        result_text=None,
        blocked_reason=None,
    )


@pytest.mark.parametrize(
    ("status", "lease", "effects_done", "expected"),
    [
        (PhaseStatus.PENDING, "none", False, RecoveryPoint.CLAIMABLE),
        (PhaseStatus.ACTIVE, "expired", False, RecoveryPoint.CLAIMABLE),
        (PhaseStatus.ACTIVE, "none", False, RecoveryPoint.CLAIMABLE),
        (PhaseStatus.ACTIVE, "live", False, RecoveryPoint.HELD_ELSEWHERE),
        (PhaseStatus.COMPLETE, "expired", False, RecoveryPoint.EFFECTS_OUTSTANDING),
        (PhaseStatus.BLOCKED, "none", False, RecoveryPoint.EFFECTS_OUTSTANDING),
        (PhaseStatus.FAILED, "live", False, RecoveryPoint.EFFECTS_HELD_ELSEWHERE),
        (PhaseStatus.COMPLETE, "live", True, RecoveryPoint.SETTLED),
        (PhaseStatus.BLOCKED, "none", True, RecoveryPoint.SETTLED),
    ],
)
def test_recovery_point__each_point(
    status: PhaseStatus, lease: str, effects_done: bool, expected: RecoveryPoint
) -> None:
    assert recovery_point(_run(status, LEASES[lease], effects_done), NOW) is expected


def test_recovery_point__lease_ending_exactly_now_is_still_held() -> None:
    """The SQL says `lease_until < now` is free; equal is still the holder's."""
    assert recovery_point(_run(PhaseStatus.ACTIVE, NOW, False), NOW) is RecoveryPoint.HELD_ELSEWHERE


async def test_store__sql_and_claims_agree_with_recovery_point(store: Store) -> None:
    for issue, (status, lease, effects_done) in enumerate(COMBINATIONS, start=1):
        task = await store.tasks.ensure(TaskInfo("o/r", issue), NOW)
        run = await store.phases.ensure(task.id, Phase.PLAN, "d", NOW)
        async with store.engine.begin() as conn:
            await conn.execute(
                update(phase_runs)
                .where(phase_runs.c.id == run.id)
                .values(status=status.value, lease_until=LEASES[lease], effects_done=effects_done)
            )
        seeded = await store.phases.get(task.id, Phase.PLAN)
        assert seeded is not None
        expected = recovery_point(seeded, NOW)
        async with store.engine.connect() as conn:
            in_sql = (
                await conn.execute(select(point_sql(NOW)).where(phase_runs.c.id == run.id))
            ).scalar_one()
        case = f"{status}/{lease}/effects_done={effects_done}"
        assert in_sql == expected.value, case

        claimed = await store.phases.claim(task.id, Phase.PLAN, "me", 30.0, NOW)
        assert (claimed is not None) is (expected is RecoveryPoint.CLAIMABLE), case
        if claimed is None:
            took_effects = await store.phases.claim_effects(task.id, Phase.PLAN, "me", 30.0, NOW)
            assert (took_effects is not None) is (expected is RecoveryPoint.EFFECTS_OUTSTANDING), (
                case
            )
