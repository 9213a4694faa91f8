"""The chaos itself: a seeded schedule of kills, stops, Redis restarts, GitHub faults and duplicates.

Every injection is drawn from one `random.Random(seed)`: which kind (weighted
by the budget left), which worker (one holding a phase lease when there is
one: "mid-phase"), which endpoint and fault, which delivery to duplicate.
Kills and stops run as background tasks, so a worker may be frozen while
another is killed and Redis restarts.

The records kept here (who held which phase at a kill or stop, and whether
another worker took it over while the stopped one was frozen) are what the
checks use for G5 and the recovery times.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Final

from redis.exceptions import RedisError
from sqlalchemy import select

from agent_workflow.core.model import Phase
from agent_workflow.queue.bullmq_backend import BullQueue
from agent_workflow.service.jobs import PHASE, ROUTE
from agent_workflow.store import Store
from agent_workflow.store.schema import agent_runs, phase_runs
from chaos.cluster import Cluster, WorkerSlot
from chaos.config import ChaosConfig
from chaos.driver import Users
from chaos.services import RedisServer
from chaos.world import HOOK_ID, Timeline
from github_emulator.client import EmulatorAdmin

KINDS: Final = ("kill", "stop", "redis", "fault", "redeliver", "queue_dup")

MUTATION_ENDPOINTS: Final = (
    # (method, path regex, weight): how often the bot makes each kind of request.
    ("POST", r"/issues/\d+/comments$", 5),
    ("POST", r"/issues/\d+/labels$", 3),
    ("POST", r"/pulls$", 2),
    ("DELETE", r"/issues/\d+/labels/.+$", 1),
    ("POST", r"/pulls/\d+/comments/\d+/replies$", 2),
)
FAULT_KINDS: Final = ("drop_after_apply", "error_502_before_apply", "secondary_rate_limit")

STOP_SETTLE_S: Final = 0.3
"""After SIGSTOP, how long before reading what the frozen worker holds: whatever it sent
before freezing (a COMMIT in flight) has landed by then, and nothing more can."""

ENQUEUE_TIMEOUT_S: Final = 3.0
"""An enqueue while Redis is down would retry for long; the duplicate is simply skipped."""


@dataclass(frozen=True)
class Held:
    """A phase run a worker held (lease owner) when it was killed or stopped, with its fence.

    `agent_open` is True when the agent run under that fence had no recorded
    outcome yet: the worker was mid-agent, not performing the effects of a
    result it had already recorded.
    """

    run_id: int
    fence: int
    status: str
    agent_open: bool = False


@dataclass
class KillRecord:
    """One SIGKILL."""

    owner: str
    at: float
    """Wall-clock time (epoch seconds, like the database's timestamps)."""
    held: list[Held]


@dataclass
class StopRecord:
    """One SIGSTOP … SIGCONT, and which held runs another worker took over meanwhile."""

    owner: str
    stopped_at: float
    continued_at: float = 0.0
    held: list[Held] = field(default_factory=list)
    taken_over: list[Held] = field(default_factory=list)


class Injector:
    """Spends the fault budgets at random moments until they are gone or `until` is set."""

    def __init__(
        self,
        config: ChaosConfig,
        rng: random.Random,
        cluster: Cluster,
        redis: RedisServer,
        admin: EmulatorAdmin,
        users: Users,
        store: Store,
        queue: BullQueue,
        timeline: Timeline,
    ) -> None:
        self._config = config
        self._rng = rng
        self._cluster = cluster
        self._redis = redis
        self._admin = admin
        self._users = users
        self._store = store
        self._queue = queue
        self._timeline = timeline
        self.budget: Counter[str] = Counter(
            {
                "kill": config.kills,
                "stop": config.stops,
                "redis": config.redis_restarts,
                "fault": config.github_faults,
                "redeliver": config.redeliveries,
                "queue_dup": config.queue_duplicates,
            }
        )
        self.done: Counter[str] = Counter()
        self.kills: list[KillRecord] = []
        self.stops: list[StopRecord] = []
        self.faults_armed: Counter[str] = Counter()
        self.duplicate_copies = 0
        """Webhook copies sent by redelivery (a concurrent redelivery sends two)."""
        self.duplicate_jobs = 0
        """Jobs enqueued directly as duplicates."""
        self.skipped: Counter[str] = Counter()
        self._background: set[asyncio.Task[None]] = set()
        self._redis_busy = False
        self._dup_seq = 0

    async def run(self, until: asyncio.Event) -> None:
        """Inject until every budget is spent or `until` is set."""
        interval = max(self._config.chaos_interval_s, 0.01)
        while not until.is_set() and sum(self.budget.values()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(until.wait(), self._rng.expovariate(1 / interval))
            if until.is_set():
                break
            kinds = [k for k in KINDS if self.budget[k] > 0]
            kind = self._rng.choices(kinds, weights=[self.budget[k] for k in kinds])[0]
            try:
                spent = await self._inject(kind)
            except Exception as exc:  # an injection failing is a harness event, not a verdict
                self._timeline.add(f"injection {kind} failed: {exc!r}")
                spent = False
            if spent:
                self.budget[kind] -= 1
                self.done[kind] += 1
            else:
                self.skipped[kind] += 1

    async def finish(self) -> None:
        """Wait for restarts and SIGCONTs still in flight."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def _inject(self, kind: str) -> bool:
        match kind:
            case "kill":
                return await self._kill()
            case "stop":
                return await self._stop()
            case "redis":
                return self._restart_redis()
            case "fault":
                return await self._fault()
            case "redeliver":
                return await self._redeliver()
            case "queue_dup":
                return await self._queue_duplicate()
            case _:  # pragma: no cover - KINDS is exhaustive
                raise AssertionError(f"unknown injection {kind!r}")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- processes ------------------------------------------------------------------------

    async def _holdings(self, owners: list[str]) -> dict[str, list[Held]]:
        """Phase runs leased by each owner right now."""
        stmt = select(
            phase_runs.c.id, phase_runs.c.fence, phase_runs.c.status, phase_runs.c.lease_owner
        ).where(phase_runs.c.lease_owner.in_(owners), phase_runs.c.lease_until >= time.time())
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        held: dict[str, list[Held]] = {o: [] for o in owners}
        for row in rows:
            held[row.lease_owner].append(Held(row.id, row.fence, row.status))
        return held

    async def _frozen_holdings(self, owner: str) -> list[Held]:
        """What a frozen worker holds: runs it claimed last and has not let go of.

        Read while it is frozen, so nothing it does later can be mistaken for
        something done before; `agent_open` tells a run mid-agent from one whose
        result is recorded and only its effects are outstanding.
        """
        stmt = (
            select(phase_runs.c.id, phase_runs.c.fence, phase_runs.c.status, agent_runs.c.outcome)
            .select_from(
                phase_runs.outerjoin(
                    agent_runs,
                    (agent_runs.c.phase_run_id == phase_runs.c.id)
                    & (agent_runs.c.fence == phase_runs.c.fence),
                )
            )
            .where(
                phase_runs.c.lease_owner == owner,
                (phase_runs.c.status == "active") | phase_runs.c.effects_done.is_(False),
            )
        )
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [
            Held(row.id, row.fence, row.status, row.status == "active" and row.outcome is None)
            for row in rows
        ]

    async def _pick_worker(self) -> tuple[WorkerSlot, list[Held]] | None:
        """A running worker, preferring one that holds a phase lease (mid-phase)."""
        running = self._cluster.running_owners()
        if not running:
            return None
        owners = sorted(running)
        held = await self._holdings(owners)
        holders = [o for o in owners if held[o]]
        owner = self._rng.choice(holders or owners)
        return running[owner], held[owner]

    async def _kill(self) -> bool:
        picked = await self._pick_worker()
        if picked is None:
            return False
        slot, held = picked
        at = time.time()
        owner = await self._cluster.kill(slot)
        self.kills.append(KillRecord(owner, at, held))
        self._timeline.add(f"SIGKILL {owner} (holding {len(held)} phase lease(s))")
        delay = self._rng.uniform(0.2, max(self._config.restart_delay_s, 0.2))
        self._spawn(self._restart_later(slot, delay), f"restart-{owner}")
        return True

    async def _restart_later(self, slot: WorkerSlot, delay: float) -> None:
        await asyncio.sleep(delay)
        owner = await self._cluster.restart(slot)
        self._timeline.add(f"started {owner}")

    async def _stop(self) -> bool:
        if any(s.stopped for s in self._cluster.slots):
            return False  # one zombie at a time keeps the records readable
        picked = await self._pick_worker()
        if picked is None:
            return False
        slot, _ = picked
        stopped_at = time.time()
        await self._cluster.stop(slot)
        await asyncio.sleep(STOP_SETTLE_S)
        held = await self._frozen_holdings(slot.owner)
        record = StopRecord(slot.owner, stopped_at, held=held)
        self.stops.append(record)
        self._timeline.add(
            f"SIGSTOP {slot.owner} for {self._config.effective_stop_s:.1f} s "
            f"(holding {len(held)} phase lease(s))"
        )
        self._spawn(self._continue_later(slot, record), f"cont-{slot.owner}")
        return True

    async def _continue_later(self, slot: WorkerSlot, record: StopRecord) -> None:
        await asyncio.sleep(self._config.effective_stop_s)
        # Read the fences while the process is still frozen: it cannot race this read.
        if record.held:
            stmt = select(phase_runs.c.id, phase_runs.c.fence).where(
                phase_runs.c.id.in_([h.run_id for h in record.held])
            )
            async with self._store.engine.connect() as conn:
                fences = {row.id: row.fence for row in (await conn.execute(stmt)).all()}
            record.taken_over = [h for h in record.held if fences.get(h.run_id, h.fence) > h.fence]
        record.continued_at = time.time()
        await self._cluster.cont(slot)
        self._timeline.add(
            f"SIGCONT {slot.owner}: {len(record.taken_over)} of its {len(record.held)} "
            "lease(s) were taken over while it was frozen"
        )

    def _restart_redis(self) -> bool:
        if self._redis_busy:
            return False
        self._redis_busy = True
        self._spawn(self._redis_cycle(), "redis-restart")
        return True

    async def _redis_cycle(self) -> None:
        try:
            self._timeline.add(
                f"Redis killed (down {self._config.redis_down_s:.1f} s, all jobs lost)"
            )
            await self._redis.restart(self._config.redis_down_s)
            self._timeline.add("Redis started again (empty)")
        finally:
            self._redis_busy = False

    # -- GitHub ---------------------------------------------------------------------------

    async def _fault(self) -> bool:
        endpoints = MUTATION_ENDPOINTS
        method, path, _ = self._rng.choices(endpoints, weights=[e[2] for e in endpoints])[0]
        kind = self._rng.choice(FAULT_KINDS)
        status = self._rng.choice((403, 429)) if kind == "secondary_rate_limit" else 403
        await self._admin.add_fault(method, path, kind, times=1, retry_after=1, status=status)
        self.faults_armed[kind] += 1
        self._timeline.add(f"GitHub fault armed: {kind} on {method} {path}")
        return True

    async def _redeliver(self) -> bool:
        sent = self._users.sent
        if not sent:
            return False
        target = self._rng.choice(sent)
        concurrent = 2 if self.done["redeliver"] % 2 else 1
        copies = await self._admin.redeliver(target.id, concurrent=concurrent)
        self.duplicate_copies += len(copies)
        codes = ",".join(str(c.status_code) for c in copies)
        self._timeline.add(
            f"#{target.issue}: webhook {target.id[:8]} ({target.what}) redelivered "
            f"x{concurrent} → {codes}"
        )
        return True

    async def _queue_duplicate(self) -> bool:
        """Enqueue one job twice under fresh ids: two workers race on the same work."""
        data: dict[str, object]
        if self._users.sent and self._rng.random() < 0.7:
            target = self._users.sent[self._rng.randrange(len(self._users.sent))]
            data = {"kind": ROUTE, "delivery_id": target.id, "hook_id": HOOK_ID}
            what = f"#{target.issue}: route job of {target.id[:8]} ({target.what})"
        else:
            async with self._store.engine.connect() as conn:
                runs = (await conn.execute(select(phase_runs.c.task_id, phase_runs.c.phase))).all()
            if not runs:
                return False
            run = self._rng.choice(runs)
            data = {"kind": PHASE, "task_id": run.task_id, "phase": Phase(run.phase).value}
            what = f"phase job task {run.task_id} {run.phase}"
        self._dup_seq += 1
        ids = [f"chaos-dup-{self._dup_seq}-{side}" for side in "ab"]
        try:
            async with asyncio.timeout(ENQUEUE_TIMEOUT_S):
                await asyncio.gather(*(self._queue.enqueue(i, dict(data)) for i in ids))
        except (TimeoutError, OSError, RedisError) as exc:
            self._timeline.add(f"duplicate {what} not enqueued (Redis down?): {exc!r}")
            return False
        self.duplicate_jobs += 2
        self._timeline.add(f"duplicate {what} enqueued twice")
        return True
