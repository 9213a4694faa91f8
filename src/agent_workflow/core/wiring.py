"""Assemble the core from its parts (store, forge, agent) — no transport here."""

from __future__ import annotations

from dataclasses import dataclass

from agent_workflow.core.effects import Markers
from agent_workflow.core.ledger import Ledger
from agent_workflow.core.ports import Agent, Clock, Forge, Store
from agent_workflow.core.repo_settings import RepoConfigs
from agent_workflow.core.rounds import RoundLimits
from agent_workflow.core.router import Router
from agent_workflow.core.runner import PhaseRunner, RunnerSettings
from agent_workflow.core.telemetry import NO_TELEMETRY, Telemetry
from agent_workflow.core.trust import Trust


@dataclass(frozen=True)
class Core:
    """The router and what it is built from."""

    store: Store
    forge: Forge
    agent: Agent
    ledger: Ledger
    runner: PhaseRunner
    router: Router


def build_core(
    store: Store,
    forge: Forge,
    agent: Agent,
    settings: RunnerSettings,
    *,
    clock: Clock,
    own_login: str,
    marker_secret: bytes,
    uncertain_backoff_s: float,
    permission_ttl_s: float,
    round_limits: RoundLimits,
    repo_configs: RepoConfigs,
    telemetry: Telemetry = NO_TELEMETRY,
) -> Core:
    """Wire a `Router` over the given store, forge and agent.

    `own_login` is our GitHub identity (learned at start); the ledger adopts only what it
    authored, with markers signed under `marker_secret`. `repo_configs` resolves each
    repository's settings (`core.repo_settings`); `telemetry` hears what the ledger and
    the runner did (metrics).
    """
    ledger = Ledger(
        store.effects,
        forge,
        clock,
        uncertain_backoff_s=uncertain_backoff_s,
        own_login=own_login,
        markers=Markers(marker_secret),
        telemetry=telemetry,
    )
    runner = PhaseRunner(store, agent, ledger, settings, clock, repo_configs, telemetry)
    trust = Trust(forge, clock, ttl_s=permission_ttl_s)
    router = Router(
        store,
        runner,
        ledger,
        trust,
        clock,
        own_login=own_login,
        forge=forge,
        round_limits=round_limits,
        configs=repo_configs,
    )
    return Core(store, forge, agent, ledger, runner, router)
