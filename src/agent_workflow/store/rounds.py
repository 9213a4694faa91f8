"""The `rounds` table: revise and repair rounds after the pull request (DESIGN §4.6).

A round is the next attempt of its phase (`phase_runs` keeps one row per task and
phase, as for plan/deliver/compound), so it gets the same claim, lease, fence,
session and effect ledger. What is particular to rounds lives here: the trigger that
started each one (unique: one round per review, command comment or head commit), the
input it works from, and the commit it pushed.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError

from agent_workflow.core.errors import LeaseLost
from agent_workflow.core.model import Guard, Phase, PhaseStatus, RoundTrigger
from agent_workflow.core.ports import CheckRun, ReviewComment, Round, RoundOpened, RoundWork
from agent_workflow.core.text import storable
from agent_workflow.store.connections import Database
from agent_workflow.store.phase_runs import insert_new_run, next_attempt
from agent_workflow.store.schema import phase_runs, rounds, tasks

_FINAL = [PhaseStatus.COMPLETE.value, PhaseStatus.BLOCKED.value, PhaseStatus.FAILED.value]


class Rounds:
    """SQL for `rounds`; implements the core's `RoundStore`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def open(
        self,
        task_id: int,
        phase: Phase,
        work: RoundWork,
        trigger_delivery: str,
        max_rounds: int,
        now: float,
    ) -> RoundOpened:
        """Record the round and make it the phase's next attempt, in one transaction."""
        key = work.trigger.key
        try:
            async with self._db.begin() as conn:
                # Rounds of a task open one at a time: this write takes the task's row
                # (PostgreSQL) or the database's write lock (SQLite) before anything is read.
                await conn.execute(
                    update(tasks).where(tasks.c.id == task_id).values(updated_at=tasks.c.updated_at)
                )
                mine = (rounds.c.task_id == task_id, rounds.c.phase == phase.value)
                existing = select(rounds.c.id).where(*mine, rounds.c.trigger_key == key)
                if (await conn.execute(existing)).first() is not None:
                    return RoundOpened.DUPLICATE
                count = (await conn.execute(select(func.count()).where(*mine))).scalar_one()
                if count >= max_rounds:
                    return RoundOpened.LIMIT
                if await self._sibling_unsettled(conn, task_id, phase):
                    return RoundOpened.BUSY  # a review round and a repair never overlap
                attempt = await self._advance(conn, task_id, phase, trigger_delivery, now)
                if attempt is None:
                    return RoundOpened.BUSY
                await conn.execute(
                    rounds.insert().values(
                        task_id=task_id,
                        phase=phase.value,
                        trigger_key=key,
                        attempt=attempt,
                        number=count + 1,
                        work=work_to_json(work),
                        created_at=now,
                    )
                )
        except IntegrityError:
            # A concurrent open of the same trigger (or attempt) won: it is that round.
            return RoundOpened.DUPLICATE
        return RoundOpened.OPENED

    async def _advance(
        self, conn: Any, task_id: int, phase: Phase, trigger: str, now: float
    ) -> int | None:
        """The phase's next attempt, made pending; None while its current one is unsettled."""
        c = phase_runs.c
        current = (
            await conn.execute(
                select(c.id, c.attempt).where(c.task_id == task_id, c.phase == phase.value)
            )
        ).first()
        if current is None:
            inserted = await conn.execute(
                insert_new_run(
                    self._db.dialect,
                    task_id,
                    phase,
                    trigger,
                    now,
                    status=PhaseStatus.PENDING.value,
                    fence=0,
                ).returning(c.attempt)
            )
            attempt: int | None = inserted.scalar()
            return attempt
        # Conditional: a concurrent round of another trigger advancing it first wins.
        advanced = await conn.execute(
            update(phase_runs)
            .where(
                c.id == current.id,
                c.attempt == current.attempt,
                c.status.in_(_FINAL),
                c.effects_done.is_(True),
            )
            .values(**next_attempt(trigger, now))
            .returning(c.attempt)
        )
        advanced_to: int | None = advanced.scalar()
        return advanced_to

    async def _sibling_unsettled(self, conn: Any, task_id: int, phase: Phase) -> bool:
        """True while the other round phase's current attempt is not settled: both work on
        the pull request's branch, so one waits for the other."""
        other = Phase.REPAIR if phase is Phase.REVISE else Phase.REVISE
        c = phase_runs.c
        row = (
            await conn.execute(
                select(c.status, c.effects_done).where(c.task_id == task_id, c.phase == other.value)
            )
        ).first()
        return row is not None and not (row.status in _FINAL and bool(row.effects_done))

    async def count(self, task_id: int, phase: Phase) -> int:
        """How many rounds the task's phase has had."""
        stmt = select(func.count()).where(
            rounds.c.task_id == task_id, rounds.c.phase == phase.value
        )
        async with self._db.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def find(self, task_id: int, phase: Phase, key: str) -> Round | None:
        """The round started by the trigger `key`, if any."""
        return await self._one(rounds.c.trigger_key == key, task_id=task_id, phase=phase)

    async def get(self, task_id: int, phase: Phase, attempt: int) -> Round | None:
        """The round run by this attempt of the phase."""
        return await self._one(rounds.c.attempt == attempt, task_id=task_id, phase=phase)

    async def pushed_by(self, task_id: int, phase: Phase, sha: str) -> Round | None:
        """The round of the phase that pushed `sha`, if one did."""
        return await self._one(rounds.c.pushed_sha == sha, task_id=task_id, phase=phase)

    async def record_push(
        self, task_id: int, phase: Phase, attempt: int, sha: str, guard: Guard, now: float
    ) -> None:
        """The pull request's head is `sha`, pushed by this attempt: on the task, and on the
        round when the phase is one (deliver has none). Fenced: a zombie writes nothing."""
        holds = exists().where(phase_runs.c.id == guard.run_id, phase_runs.c.fence == guard.fence)
        async with self._db.begin() as conn:
            done = await conn.execute(
                update(tasks)
                .where(tasks.c.id == task_id, holds)
                .values(head_sha=sha, updated_at=now)
            )
            if done.rowcount != 1:
                raise LeaseLost(f"phase run {guard.run_id}: fence {guard.fence} is stale")
            if phase.is_round:
                await conn.execute(
                    update(rounds)
                    .where(
                        rounds.c.task_id == task_id,
                        rounds.c.phase == phase.value,
                        rounds.c.attempt == attempt,
                    )
                    .values(pushed_sha=sha)
                )

    async def all(self, task_id: int) -> list[Round]:
        """Every round of the task, oldest first (status, checks)."""
        stmt = select(rounds).where(rounds.c.task_id == task_id).order_by(rounds.c.id)
        async with self._db.connect() as conn:
            return [_round(r) for r in (await conn.execute(stmt)).mappings()]

    async def _one(self, condition: Any, *, task_id: int, phase: Phase) -> Round | None:
        stmt = select(rounds).where(
            rounds.c.task_id == task_id, rounds.c.phase == phase.value, condition
        )
        async with self._db.connect() as conn:
            row = (await conn.execute(stmt)).mappings().first()
        return _round(row) if row else None


def work_to_json(work: RoundWork) -> dict[str, Any]:
    """The `work` column's value: text from GitHub made storable (PostgreSQL's JSONB refuses
    NUL and lone surrogates, which reviews and CI output may contain)."""
    return cast(dict[str, Any], storable(dataclasses.asdict(work)))


def work_from_json(value: dict[str, Any]) -> RoundWork:
    """The `RoundWork` stored by `work_to_json`."""
    return RoundWork(
        trigger=RoundTrigger(**value["trigger"]),
        comments=tuple(ReviewComment(**c) for c in value.get("comments", ())),
        checks=tuple(
            CheckRun(**{**c, "annotations": tuple(c.get("annotations", ()))})
            for c in value.get("checks", ())
        ),
        signature=value.get("signature", ""),
        start_sha=value.get("start_sha", ""),
    )


def _round(row: Any) -> Round:
    return Round(
        id=row["id"],
        task_id=row["task_id"],
        phase=Phase(row["phase"]),
        attempt=row["attempt"],
        number=row["number"],
        work=work_from_json(row["work"]),
        pushed_sha=row["pushed_sha"],
    )
