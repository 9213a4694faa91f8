"""Chaos testing: real `aw serve` and `aw worker` processes under seeded faults, then G1–G5 checked.

A harness beside `bench/`, not product code: it drives the product from outside
(the emulator, real processes, SIGKILL/SIGSTOP, Redis restarts) and reads the
database to check the guarantees. `run_chaos(ChaosConfig(...))` runs one seeded
run and returns a `ChaosReport` (`report.exit_code` is non-zero on any
violation); `python -m chaos` (from the repository root) runs it from the shell.
"""

from chaos.config import ChaosConfig
from chaos.report import ChaosReport
from chaos.run import run_chaos, run_chaos_async

__all__ = ["ChaosConfig", "ChaosReport", "run_chaos", "run_chaos_async"]
