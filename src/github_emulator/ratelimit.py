"""Primary rate-limit bookkeeping: one hourly bucket per caller, headers on every answer."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Bucket:
    """One caller's budget for the current window."""

    limit: int
    used: int
    reset: float  # epoch seconds when the window ends

    def headers(self, resource: str = "core") -> dict[str, str]:
        """The `x-ratelimit-*` headers GitHub sends with every response."""
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(max(self.limit - self.used, 0)),
            "x-ratelimit-reset": str(math.ceil(self.reset)),
            "x-ratelimit-used": str(self.used),
            "x-ratelimit-resource": resource,
        }

    @property
    def exhausted(self) -> bool:
        """True when the caller has no requests left in this window."""
        return self.used >= self.limit


class RateLimiter:
    """Counts requests per caller; GitHub gives a token 5,000 an hour."""

    def __init__(
        self, limit: int = 5000, window: float = 3600.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._buckets: dict[str, Bucket] = {}

    def take(self, caller: str) -> tuple[Bucket, bool]:
        """Charge one request to `caller`; False (and no charge) when the bucket is empty."""
        moment = self._clock()
        bucket = self._buckets.get(caller)
        if bucket is None or bucket.reset <= moment:
            bucket = Bucket(limit=self.limit, used=0, reset=moment + self.window)
            self._buckets[caller] = bucket
        if bucket.exhausted:
            return bucket, False
        bucket.used += 1
        return bucket, True

    def refund(self, caller: str) -> None:
        """Give one request back (GitHub does not charge a 304 to a conditional request)."""
        bucket = self._buckets.get(caller)
        if bucket is not None and bucket.used > 0:
            bucket.used -= 1
