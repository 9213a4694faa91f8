"""`python -m chaos`: a typer command with every `ChaosConfig` knob an operator may want.

It exits with the report's exit code (0: every guarantee held; 1: a violation; 2: bad setup).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from agent_workflow.core.errors import AgentWorkflowError
from chaos.config import DEFAULT_PG_ADMIN_URL, ChaosConfig
from chaos.run import run_chaos

_DEFAULT = ChaosConfig()


def chaos_command(
    issues: Annotated[
        int, typer.Option(help="Issues driven through the whole lifecycle.")
    ] = _DEFAULT.issues,
    workers: Annotated[int, typer.Option(help="aw worker processes.")] = _DEFAULT.workers,
    seed: Annotated[
        int, typer.Option(help="Seeds every random choice of the run.")
    ] = _DEFAULT.seed,
    kills: Annotated[
        int, typer.Option(help="SIGKILLs of workers (each restarted).")
    ] = _DEFAULT.kills,
    stops: Annotated[
        int, typer.Option(help="SIGSTOP/SIGCONT of a worker past its lease.")
    ] = _DEFAULT.stops,
    redis_restarts: Annotated[
        int, typer.Option(help="Restarts of the run's own Redis.")
    ] = _DEFAULT.redis_restarts,
    github_faults: Annotated[
        int, typer.Option(help="One-shot GitHub faults on mutations.")
    ] = _DEFAULT.github_faults,
    redeliveries: Annotated[
        int, typer.Option(help="Webhooks redelivered (same id).")
    ] = _DEFAULT.redeliveries,
    queue_duplicates: Annotated[
        int, typer.Option(help="Jobs enqueued twice to race.")
    ] = _DEFAULT.queue_duplicates,
    chaos_interval: Annotated[
        float, typer.Option(help="Mean seconds between injections.")
    ] = _DEFAULT.chaos_interval_s,
    issue_interval: Annotated[
        float, typer.Option(help="Seconds between starting issues.")
    ] = _DEFAULT.issue_interval_s,
    agent_duration: Annotated[
        float, typer.Option(help="Scripted agent seconds per phase.")
    ] = _DEFAULT.agent_duration_s,
    agent_jitter: Annotated[
        float, typer.Option(help="Up to this much more, seeded.")
    ] = _DEFAULT.agent_jitter_s,
    timeout: Annotated[
        float, typer.Option(help="Give up driving after this many seconds.")
    ] = 300.0,
    pg_admin_url: Annotated[
        str, typer.Option(help="PostgreSQL URL used to create the run's own database.")
    ] = DEFAULT_PG_ADMIN_URL,
    workdir: Annotated[Path | None, typer.Option(help="Where the process logs go.")] = None,
    keep: Annotated[bool, typer.Option(help="Keep the run's database.")] = False,
    progress: Annotated[
        float, typer.Option(help="Print a status line to stderr every N seconds (0: never).")
    ] = 0.0,
    timeline: Annotated[bool, typer.Option(help="Print the timeline of the run.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Chaos run: real aw serve + workers on Redis and PostgreSQL under seeded faults, with
    review and failing-check rounds on the pull requests; checks G1–G5 and R1–R3."""
    config = ChaosConfig(
        issues=issues,
        workers=workers,
        seed=seed,
        kills=kills,
        stops=stops,
        redis_restarts=redis_restarts,
        github_faults=github_faults,
        redeliveries=redeliveries,
        queue_duplicates=queue_duplicates,
        chaos_interval_s=chaos_interval,
        issue_interval_s=issue_interval,
        agent_duration_s=agent_duration,
        agent_jitter_s=agent_jitter,
        timeout_s=timeout,
        pg_admin_url=pg_admin_url,
        workdir=workdir,
        keep=keep,
        progress_s=progress,
    )
    try:
        report = run_chaos(config)
    except AgentWorkflowError as exc:
        typer.echo(f"chaos: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        print(report.to_json())
    else:
        wide = None if sys.stdout.isatty() else 160  # logs and CI: do not wrap at 80 columns
        report.render(Console(width=wide), timeline=timeline)
    raise typer.Exit(report.exit_code)
