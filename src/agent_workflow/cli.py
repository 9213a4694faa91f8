"""The `aw` command line. Bad configuration is one line on stderr and exit code 2."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from agent_workflow.config import Settings, load_settings
from agent_workflow.core.errors import AgentWorkflowError, ConfigError
from agent_workflow.logs import configure_logging

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
db_app = typer.Typer(no_args_is_help=True, help="Database maintenance.")
app.add_typer(db_app, name="db")
app_app = typer.Typer(no_args_is_help=True, help="GitHub App registration.")
app.add_typer(app_app, name="app")
T = TypeVar("T")


def _run(make: Callable[[Settings], Coroutine[Any, Any, T]], **overrides: Any) -> T:
    """Load settings, run the coroutine, turn our errors into one line and exit 2."""
    try:
        settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
        configure_logging()
        return asyncio.run(make(settings))
    except ConfigError as exc:
        typer.echo(f"aw: configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
    except AgentWorkflowError as exc:
        typer.echo(f"aw: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (AW_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (AW_PORT).")] = None,
) -> None:
    """Receive GitHub webhooks; without AW_REDIS_URL also route them in-process."""
    from agent_workflow.service.serve import serve as run_serve

    _run(lambda s: run_serve(s, handle_signals=True), host=host, port=port)


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Jobs at once (AW_CONCURRENCY).")] = None,
) -> None:
    """Consume BullMQ jobs (needs AW_REDIS_URL). SIGTERM finishes or releases running jobs."""
    from agent_workflow.service.worker import work

    _run(work, concurrency=concurrency)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Tasks, phases, leases and outstanding effects; dead-lettered deliveries."""
    from agent_workflow.core.clock import now
    from agent_workflow.status import (
        collect_dead_letters,
        collect_installations,
        collect_limits,
        collect_status,
    )
    from agent_workflow.store import connect

    async def collect(
        settings: Settings,
    ) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        store = await connect(settings.database_url)
        budget = settings.daily_budget_usd
        try:
            return (
                await collect_status(store, now(), budget),
                await collect_dead_letters(store),
                await collect_limits(store, now(), budget),
                await collect_installations(store),
            )
        finally:
            await store.close()

    rows, dead, limits, installations = _run(collect)
    if as_json:  # the task list, as before (dead letters: the table output)
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="agent-workflow tasks")
    for col in ("issue", "phase", "status", "attempt", "fence", "lease", "cost $", "effects"):
        table.add_column(col)
    for task in rows:
        effects = f"{task['effects_done']} done, {len(task['effects_outstanding'])} outstanding"
        for ph in task["phases"] or [{}]:
            lease = (
                f"{ph.get('lease_owner')} ({ph.get('lease_seconds_left')} s)"
                if ph.get("lease_owner")
                else "-"
            )
            state = ph.get("status", "-")
            if task.get("held"):
                state = f"{state} (held: {task['held']})"
            table.add_row(
                f"{task['repo']}#{task['issue']}",
                ph.get("phase", "-"),
                f"{state} ({ph['waiting']})" if ph.get("waiting") else state,
                str(ph.get("attempt", "-")),
                str(ph.get("fence", "-")),
                lease,
                str(ph.get("cost_usd", "-")),
                effects,
            )
    Console().print(table)
    cap = limits["daily_budget_usd"]
    typer.echo(
        f"spent today (UTC): ${limits['spent_today_usd']:.2f}"
        + (f" of ${cap:.2f}" if cap is not None else " (no daily budget)")
        + (" — new agent runs wait for the next day" if limits["waiting_for_budget"] else "")
        + f"; agent slots in use: {len(limits['slots'])}"
    )
    for inst in installations:
        typer.echo(
            f"installation {inst['installation_id']} ({inst['account'] or '?'}) is "
            f"{inst['state']}: its events start nothing and its tasks are held"
        )
    if dead["count"]:
        letters = Table(
            title=f"dead-lettered deliveries: {dead['count']} (routing failed too often;"
            " never retried automatically)"
        )
        for col in ("delivery", "event", "attempts", "last error"):
            letters.add_column(col)
        for d in dead["latest"]:
            letters.add_row(
                d["delivery_id"],
                f"{d['event']}.{d['action']}" if d["action"] else d["event"],
                str(d["attempts"]),
                d["last_error"],
            )
        Console().print(letters)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema to the newest version (aw serve/worker also do this)."""
    from agent_workflow.store import connect

    async def upgrade(settings: Settings) -> None:
        store = await connect(settings.database_url)
        await store.close()

    _run(upgrade)
    typer.echo("database schema is up to date")


@app_app.command("manifest")
def app_manifest(
    webhook_url: Annotated[
        str, typer.Option(help="Where GitHub sends webhooks: https://<host>/webhooks/github.")
    ],
    name: Annotated[str, typer.Option(help="The App's name (unique on GitHub).")] = (
        "agent-workflow"
    ),
    url: Annotated[str, typer.Option(help="The App's homepage.")] = (
        "https://github.com/agent-workflow/agent-workflow"
    ),
    redirect_url: Annotated[
        str | None, typer.Option(help="Where GitHub redirects after registration.")
    ] = None,
) -> None:
    """Print the GitHub App manifest (permissions, events, webhook URL) as JSON."""
    from agent_workflow.ingress.manifest import app_manifest as build

    manifest = build(name=name, url=url, webhook_url=webhook_url, redirect_url=redirect_url)
    typer.echo(json.dumps(manifest, indent=2))


@app.command()
def emulator(
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8900,
    token: Annotated[str, typer.Option(help="The API token clients must send.")] = "emulator-token",
    webhook_url: Annotated[str | None, typer.Option(help="Where to send webhooks.")] = None,
    webhook_secret: Annotated[str | None, typer.Option(help="Secret to sign webhooks.")] = None,
) -> None:
    """Run the GitHub emulator (REST subset, admin API at /_emulator, fault injection)."""
    from github_emulator import main as emulator_main

    configure_logging()
    emulator_main(
        host=host, port=port, token=token, webhook_url=webhook_url, webhook_secret=webhook_secret
    )


@app.command()
def demo(
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    issues: Annotated[int, typer.Option(help="How many issues to drive.")] = 2,
) -> None:
    """Offline demo: emulator + scripted agent, plan → /approve → deliver → merge → compound."""
    from agent_workflow.demo.run import run_demo

    try:
        code = asyncio.run(run_demo(as_json=as_json, issues=issues))
    except AgentWorkflowError as exc:
        typer.echo(f"aw demo: {exc}", err=True)
        raise typer.Exit(1) from None
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    app()
