"""What-if patches for the benchmarks: each one is a proposed fix, applied by monkeypatching.

None of this changes the product; it measures what a change *would* buy
before anyone makes it. Each patch names the file and function it stands in
for. Apply with `apply(["skip-routed", ...])` before the system is built.

* `skip-routed` — `service/handler.py::JobHandler.route_delivery`: a delivery
  whose `routed_at` is set was routed to completion already; a duplicate job
  for it (BullMQ redelivery, a sweeper re-enqueue racing the original, a
  duplicate enqueue) returns after the one SELECT. Safe: `mark_routed` runs
  only after `route()` returned, and whatever a routed event started is the
  sweeper's to drive on (phase jobs), not the route job's.
* `no-pre-ping` — `store/db.py::create_engine`: `pool_pre_ping=True` sends a
  ping on every pool checkout (one round trip per store call). Without it, a
  connection the server closed fails its statement and must be retried.
* `autocommit-reads` — `store/*`: single SELECTs through `engine.connect()`
  run inside an implicit transaction (BEGIN … ROLLBACK: two extra round
  trips); on an `AUTOCOMMIT` connection they are one round trip. Writes keep
  `engine.begin()` transactions.
* `select-first` — `store/tasks.py::Tasks.ensure` and
  `store/phase_runs.py::PhaseRuns.ensure`: read first and insert-if-absent
  only when the row is missing (the common case of a duplicate event finds
  it: one statement instead of INSERT … ON CONFLICT DO NOTHING + SELECT).
  G1 still rests on the unique constraint and the re-read after the insert.
* `guard-first` — `core/router.py::Router.route`: before ensuring the task
  and the phase (two transactions of two statements each) and reading the
  phase again, one joined SELECT of the event's target phase (label/`/agent
  plan` → plan, `/approve` → deliver, merged → compound): final with its
  effects done, or active under a live lease, is answered at once — the same
  answer the long path reaches.
* `raw-routed-check` — with `skip-routed`: the routed check as one asyncpg
  `fetchrow` of `routed_at` only, instead of an SQLAlchemy round trip that
  checks a connection out of the pool, pings it, begins, selects the whole row
  (JSONB payload included) and rolls back (~0.5 ms of CPU against ~0.1 ms).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

WHAT_IFS = (
    "skip-routed",
    "no-pre-ping",
    "autocommit-reads",
    "select-first",
    "guard-first",
    "raw-routed-check",
)


def apply(names: Iterable[str]) -> list[str]:
    """Apply the named patches (unknown names raise); returns them for the record."""
    applied = []
    for name in names:
        if not name:
            continue
        if name not in WHAT_IFS:
            raise ValueError(f"unknown what-if {name!r}; known: {', '.join(WHAT_IFS)}")
        globals()["_" + name.replace("-", "_")]()
        applied.append(name)
    return applied


def _skip_routed() -> None:
    from agent_workflow.service.handler import JobHandler

    original = JobHandler.route_delivery

    async def route_delivery(self: Any, delivery_id: str, hook_id: str) -> None:
        delivery = await self._store.deliveries.get(delivery_id, hook_id)
        if delivery is not None and delivery.routed_at is not None:
            return
        await original(self, delivery_id, hook_id)

    JobHandler.route_delivery = route_delivery  # type: ignore[method-assign]


def _no_pre_ping() -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from agent_workflow.store import db

    def create_engine(url: str) -> Any:
        url = db.normalize_url(url)
        return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=False)

    db.create_engine = create_engine  # type: ignore[assignment]


class _ReadsAutocommit:
    """An engine whose `connect()` (reads) is AUTOCOMMIT and whose `begin()` is transactional."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._auto = engine.execution_options(isolation_level="AUTOCOMMIT")

    def connect(self) -> Any:
        return self._auto.connect()

    def begin(self) -> Any:
        return self._engine.begin()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


def _autocommit_reads() -> None:
    from agent_workflow.store import db

    original = db.Store.__init__

    def init(self: Any, engine: Any) -> None:
        original(self, engine)
        proxy = _ReadsAutocommit(engine)
        for part in (self.deliveries, self.tasks, self.phases, self.effects):
            part._engine = proxy

    db.Store.__init__ = init  # type: ignore[method-assign]


def _select_first() -> None:
    from agent_workflow.store.phase_runs import PhaseRuns
    from agent_workflow.store.tasks import Tasks

    tasks_ensure = Tasks.ensure
    phases_ensure = PhaseRuns.ensure

    async def ensure_task(self: Any, info: Any, now: float) -> Any:
        found = await self.find(info.repo, info.issue_number)
        return found if found is not None else await tasks_ensure(self, info, now)

    async def ensure_phase(self: Any, task_id: int, phase: Any, trigger: str, now: float) -> Any:
        found = await self.get(task_id, phase)
        return (
            found if found is not None else await phases_ensure(self, task_id, phase, trigger, now)
        )

    Tasks.ensure = ensure_task  # type: ignore[method-assign]
    PhaseRuns.ensure = ensure_phase  # type: ignore[method-assign]


def _guard_first() -> None:
    from sqlalchemy import select

    from agent_workflow.core.model import Intent, Phase, PhaseStatus
    from agent_workflow.core.router import Routed, Router
    from agent_workflow.core.trust import is_bot
    from agent_workflow.store.schema import phase_runs, tasks

    target = {
        Intent.START_PLAN: Phase.PLAN,
        Intent.APPROVE: Phase.DELIVER,
        Intent.MERGED: Phase.COMPOUND,
    }
    original = Router.route

    async def route(self: Any, event: Any) -> Any:
        phase = target.get(event.intent)
        if phase is None or is_bot(event.actor, event.actor_is_bot, self._own_login):
            return await original(self, event)
        if event.intent is not Intent.MERGED and not await self._trust.allows(
            event.repo, event.actor
        ):
            return await original(self, event)
        stmt = (
            select(phase_runs.c.status, phase_runs.c.effects_done, phase_runs.c.lease_until)
            .join(tasks, tasks.c.id == phase_runs.c.task_id)
            .where(
                tasks.c.repo == event.repo,
                tasks.c.issue_number == event.issue_number,
                phase_runs.c.phase == phase.value,
            )
        )
        async with self._store.engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        if row is not None:
            status = PhaseStatus(row.status)
            if status.is_final and row.effects_done:
                return Routed("ran", phase=phase, status=status)
            if status is PhaseStatus.ACTIVE and (row.lease_until or 0) >= self._clock():
                return Routed("ran", phase=phase, status=status)
        return await original(self, event)

    Router.route = route  # type: ignore[method-assign]


def _raw_routed_check() -> None:
    import asyncpg

    from agent_workflow.service.handler import JobHandler

    original = JobHandler.route_delivery
    pools: dict[str, Any] = {}

    async def route_delivery(self: Any, delivery_id: str, hook_id: str) -> None:
        url = self._store.engine.url
        key = str(url)
        if key not in pools:
            dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
            pools[key] = await asyncpg.create_pool(dsn, min_size=2, max_size=8)
        routed = await pools[key].fetchval(
            "SELECT routed_at FROM deliveries WHERE delivery_id = $1 AND hook_id = $2",
            delivery_id,
            hook_id,
        )
        if routed is not None:
            return
        await original(self, delivery_id, hook_id)

    JobHandler.route_delivery = route_delivery  # type: ignore[method-assign]
