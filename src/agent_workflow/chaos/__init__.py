"""Chaos testing: real `aw serve` and `aw worker` processes under seeded faults, then G1–G5 checked.

`run_chaos(ChaosConfig(...))` runs one seeded run and returns a `ChaosReport`
(`report.exit_code` is non-zero on any violation). `chaos_command` is the
same as a typer command (`aw chaos`); `python -m agent_workflow.chaos` runs it
without the main CLI.
"""

from agent_workflow.chaos.config import ChaosConfig
from agent_workflow.chaos.report import ChaosReport
from agent_workflow.chaos.run import run_chaos, run_chaos_async

__all__ = ["ChaosConfig", "ChaosReport", "run_chaos", "run_chaos_async"]
