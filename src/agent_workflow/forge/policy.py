"""How patient the GitHub adapter is: retries, rate-limit waits, spacing, timeouts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class RequestPolicy:
    """Every knob of the adapter's request loop, each with the reason for its default.

    `timeout` and `mutation_interval` are settings (`AW_GITHUB_TIMEOUT_S`,
    `AW_GITHUB_MUTATION_INTERVAL_S`): their one default is in `Settings`. Tests shrink
    the waits (`RequestPolicy.fast()`); production keeps GitHub's numbers.
    """

    #: Whole request budget (`AW_GITHUB_TIMEOUT_S`).
    timeout: float
    #: Connecting should be quick; a slow connect is a network problem worth retrying.
    connect_timeout: float = 10.0
    #: Attempts for a read (and for anything never sent) before giving up: 1 + 3 retries.
    read_attempts: int = 4
    #: First backoff between read retries, doubled each time (0.5, 1, 2 s ...).
    backoff_base: float = 0.5
    #: Ceiling of one backoff step.
    backoff_max: float = 8.0
    #: Randomise backoffs (×0.5-1.0) so many workers do not retry in lockstep.
    jitter: bool = True
    #: Spacing between mutative requests per token (`AW_GITHUB_MUTATION_INTERVAL_S`).
    mutation_interval: float
    #: Secondary limit without `retry-after`: GitHub says wait at least a minute,
    #: then back off exponentially.
    secondary_wait: float = 60.0
    #: How many rate-limit waits one request may sit through before `RateLimited`.
    rate_limit_retries: int = 3
    #: Longest single wait we accept; a primary reset further away (up to an hour)
    #: fails fast so a worker holding a lease hands the work back instead of idling.
    max_wait: float = 900.0
    #: Added to a primary reset time: the reset is whole seconds and clocks drift.
    reset_margin: float = 1.0

    @classmethod
    def fast(cls) -> RequestPolicy:
        """Short waits for tests against the emulator (retry-after headers still honoured)."""
        return cls(
            timeout=5.0,
            connect_timeout=2.0,
            backoff_base=0.01,
            backoff_max=0.05,
            jitter=False,
            mutation_interval=0.0,
            secondary_wait=0.1,
            max_wait=10.0,
            reset_margin=0.1,
        )
