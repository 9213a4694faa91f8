"""What a chaos run does: how many issues and workers, which faults, how often, how fast.

Every number has a default sized for the CI run (a minute on a 2-core
machine); `bench/chaos_long.sh` raises the counts. All randomness comes from
one `seed`: the same seed gives the same schedule of decisions (the timing of
real processes still varies, so interleavings differ between runs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class ChaosConfig:
    """One chaos run. Counts are budgets: the injector spends them while issues are in flight."""

    # -- the workload -------------------------------------------------------------------
    issues: int = 8
    """Issues driven through label → plan → /approve → PR → merge → summary."""
    workers: int = 2
    """`aw worker` processes (one `aw serve` in front of them)."""
    seed: int = 1
    """Seeds every random choice: the injector, the issue mix, the scripted agents."""
    issue_interval_s: float = 0.7
    """Gap between starting two issues, so faults land while work is in flight."""
    block_fraction: float = 0.2
    """Issues whose plan blocks on attempt 1 (a trusted `/retry` starts attempt 2)."""
    error_fraction: float = 0.2
    """Issues whose deliver agent errors once per session and process (resumed after)."""
    noise_fraction: float = 0.3
    """Issues that also get an early `/approve` and an untrusted user's `/approve`."""
    review_fraction: float = 0.5
    """Issues whose PR gets a `changes_requested` review with two line comments (a revise
    round) before it is merged."""
    checks_fraction: float = 0.5
    """Issues whose PR head gets failing checks (a repair round) before it is merged."""
    more_rounds_fraction: float = 0.5
    """Of the issues with rounds, those that get one more review or failing checks (on a
    repair round's commit, possibly the same failure: the loop breaker)."""
    over_limit_fraction: float = 0.2
    """Of the issues with a review, those reviewed until past `max_revise_rounds`."""
    max_revise_rounds: int = 2
    """`AW_MAX_REVISE_ROUNDS` of the run (low, so the limit is reached)."""
    max_repair_rounds: int = 2
    """`AW_MAX_REPAIR_ROUNDS` of the run."""

    # -- the faults (budgets) -----------------------------------------------------------
    kills: int = 3
    """SIGKILLs of workers (preferably one holding a phase lease); each is restarted."""
    stops: int = 1
    """SIGSTOP/SIGCONT of a worker for `stop_s`: longer than its lock and lease (a zombie)."""
    redis_restarts: int = 1
    """Restarts of the run's own Redis (no persistence: every queued job is lost)."""
    github_faults: int = 6
    """One-shot GitHub faults armed on mutation endpoints (drop after apply, 502, secondary limit)."""
    redeliveries: int = 6
    """Webhooks redelivered with the same delivery id (every other one as 2 concurrent copies)."""
    queue_duplicates: int = 4
    """Route/phase jobs enqueued twice under fresh job ids, so two workers race on them."""
    chaos_interval_s: float = 0.8
    """Mean gap between two injections (exponentially distributed)."""
    restart_delay_s: float = 1.0
    """Longest pause before a killed worker is started again (uniform from 0.2 s)."""
    redis_down_s: float = 1.0
    """How long the Redis server stays down on a restart."""
    stop_s: float | None = None
    """SIGSTOP length; default lease + lockDuration + stalledInterval + 1 s."""

    # -- the system under test ----------------------------------------------------------
    agent_duration_s: float = 0.6
    """Scripted agent run time per phase (plus up to `agent_jitter_s`)."""
    agent_jitter_s: float = 1.0
    lease_s: float = 3.0
    heartbeat_s: float = 1.0
    lock_duration_ms: int = 3_000
    stalled_interval_ms: int = 2_000
    max_stalled_count: int = 1
    sweep_interval_s: float = 1.0
    sweep_grace_s: float = 3.0
    concurrency: int = 4
    shutdown_grace_s: float = 2.0

    # -- bounds and plumbing ------------------------------------------------------------
    timeout_s: float = 300.0
    """Give up driving after this long; unfinished issues are reported as stuck (G4)."""
    settle_timeout_s: float = 60.0
    """After the driving, how long everything may take to become final and routed."""
    quiet_s: float | None = None
    """Quiet period before the final checks; default lease + lock + stalled + 2 sweeps + 1 s."""
    pg_admin_url: str = DEFAULT_PG_ADMIN_URL
    """A PostgreSQL database to connect to for creating and dropping the run's database."""
    workdir: Path | None = None
    """Logs of every process; a fresh temporary directory by default."""
    keep: bool = False
    """Keep the run's database (and say where it is) instead of dropping it."""
    progress_s: float = 0.0
    """Print a one-line status to stderr this often while driving (0: never)."""
    extra_env: dict[str, str] = field(default_factory=dict)
    """Added to every `aw` process's environment (e.g. AW_LOG_LEVEL)."""

    @property
    def effective_stop_s(self) -> float:
        """How long a SIGSTOP lasts: past the lease and BullMQ's lock and stalled check."""
        if self.stop_s is not None:
            return self.stop_s
        return self.lease_s + (self.lock_duration_ms + self.stalled_interval_ms) / 1000 + 1.0

    @property
    def effective_quiet_s(self) -> float:
        """The quiet period before the checks: long enough for a lease to expire and two sweeps."""
        if self.quiet_s is not None:
            return self.quiet_s
        return (
            self.lease_s
            + (self.lock_duration_ms + self.stalled_interval_ms) / 1000
            + 2 * self.sweep_interval_s
            + 1.0
        )

    def aw_env(self) -> dict[str, str]:
        """The AW_* settings every `aw` process of the run shares."""
        return {
            "AW_AGENT": "scripted",
            "AW_SCRIPTED_DURATION_S": str(self.agent_duration_s),
            "AW_SCRIPTED_JITTER_S": str(self.agent_jitter_s),
            "AW_LEASE_S": str(self.lease_s),
            "AW_HEARTBEAT_S": str(self.heartbeat_s),
            "AW_LOCK_DURATION_MS": str(self.lock_duration_ms),
            "AW_STALLED_INTERVAL_MS": str(self.stalled_interval_ms),
            "AW_MAX_STALLED_COUNT": str(self.max_stalled_count),
            "AW_SWEEP_INTERVAL_S": str(self.sweep_interval_s),
            "AW_SWEEP_GRACE_S": str(self.sweep_grace_s),
            "AW_CONCURRENCY": str(self.concurrency),
            "AW_SHUTDOWN_GRACE_S": str(self.shutdown_grace_s),
            "AW_GITHUB_MUTATION_INTERVAL_S": "0",
            "AW_MAX_REVISE_ROUNDS": str(self.max_revise_rounds),
            "AW_MAX_REPAIR_ROUNDS": str(self.max_repair_rounds),
            "AW_LOG_JSON": "1",
            **self.extra_env,
        }

    def as_json(self) -> dict[str, Any]:
        """The configuration as plain data (for the report)."""
        data = asdict(self)
        data["workdir"] = str(self.workdir) if self.workdir else None
        data["stop_s"] = self.effective_stop_s
        data["quiet_s"] = self.effective_quiet_s
        return data
