"""Wall-clock time in epoch seconds; one place so tests can age leases deliberately."""

from __future__ import annotations

import time


def now() -> float:
    """Seconds since the epoch. Leases compare against this; keep worker clocks in sync (NTP)."""
    return time.time()
