"""Every Prometheus metric of agent-workflow, defined once, in one registry.

Names start with `aw_`; counters end in `_total`, histograms in `_seconds` (or a unit).
Label values come only from closed sets: phases, effect kinds, fixed outcome words, HTTP
methods and status codes, GitHub route *templates* (`forge_routes`) and model families.
Nothing from a webhook, an issue, a delivery id or free text ever becomes a label value:
each distinct value is a time series kept forever, and GitHub's text is hostile.

The metric objects are created at import, once per process, in `REGISTRY` (not the
library's global one): many runtimes in one process (the tests) share them, and the
exposition (`telemetry.exposition`) decides whether a scrape shows this process or the
sum of the host's processes (`PROMETHEUS_MULTIPROC_DIR`).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

# Agent runs take minutes to an hour; routing waits milliseconds to the sweeper's minutes.
_RUN_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, float("inf"))
_ROUTING_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, float("inf"))

# -- the webhook door -------------------------------------------------------------------

DELIVERIES = Counter(
    "aw_webhook_deliveries_total",
    "Webhook deliveries by what the inbox did: received (stored, to be routed), duplicate "
    "(already stored: same delivery or same body), ignored (not stored: no trigger), "
    "rejected (4xx: bad signature, headers or body) or unavailable (503: database down).",
    ["outcome"],
    registry=REGISTRY,
)
DEAD_LETTERED = Counter(
    "aw_deliveries_dead_lettered_total",
    "Deliveries whose routing failed AW_MAX_ROUTE_ATTEMPTS times and were dead-lettered.",
    registry=REGISTRY,
)
ROUTING_LATENCY = Histogram(
    "aw_routing_latency_seconds",
    "From a delivery's receipt (its inbox row) to a worker starting to route it: queue wait "
    "and any sweeper re-enqueue. Observed on every routing attempt.",
    buckets=_ROUTING_BUCKETS,
    registry=REGISTRY,
)
SWEEPER_REQUEUES = Counter(
    "aw_sweeper_requeues_total",
    "Jobs the sweeper re-enqueued: unrouted deliveries, or phases (lease expired, pending "
    "too long, effects outstanding).",
    ["kind"],
    registry=REGISTRY,
)

# -- phases, agents, effects (reported by the core through `core.telemetry`) -------------

AGENT_RUNS = Counter(
    "aw_agent_runs_total",
    "Agent runs started, by phase and mode: fresh (a new session) or resume (an attempt "
    "taken over from a dead worker resumes its session).",
    ["phase", "mode"],
    registry=REGISTRY,
)
PHASE_DURATION = Histogram(
    "aw_phase_duration_seconds",
    "How long an agent run of plan/deliver/compound took, by the status it left the phase "
    "in: complete, blocked, failed, or pending (an agent error, tried again).",
    ["phase", "outcome"],
    buckets=_RUN_BUCKETS,
    registry=REGISTRY,
)
ROUND_DURATION = Histogram(
    "aw_round_duration_seconds",
    "How long a revise or repair round's agent run took, by the status it left the phase in.",
    ["phase", "outcome"],
    buckets=_RUN_BUCKETS,
    registry=REGISTRY,
)
EFFECTS = Counter(
    "aw_effects_total",
    "Effect ledger steps by effect kind and result: performed (sent, recorded done), "
    "reconciled (an uncertain effect resolved: looked for on GitHub; a label change, "
    "idempotent, is simply sent again), adopted (found there, recorded "
    "done without a request), terminal (refused for good by GitHub, never sent again).",
    ["kind", "result"],
    registry=REGISTRY,
)
UNCERTAIN = Counter(
    "aw_uncertain_outcomes_total",
    "Mutations whose outcome was uncertain (5xx, timeout, dropped connection), by effect kind; "
    "each is reconciled before anything is sent again.",
    ["kind"],
    registry=REGISTRY,
)
LEASES_LOST = Counter(
    "aw_leases_lost_total",
    "Times a worker found its phase lease gone and stopped, by phase and stage (agent, effects).",
    ["phase", "stage"],
    registry=REGISTRY,
)

# -- the model ---------------------------------------------------------------------------

MODEL_TOKENS = Counter(
    "aw_model_tokens_total",
    "Tokens the model proxy metered, by phase, model family (opus, sonnet, haiku, other) and "
    "kind (input, output, cache_creation, cache_read).",
    ["phase", "model", "kind"],
    registry=REGISTRY,
)
MODEL_COST = Counter(
    "aw_model_cost_usd_total",
    "US dollars the model proxy metered (list prices), by phase and model family.",
    ["phase", "model"],
    registry=REGISTRY,
)

# -- GitHub ------------------------------------------------------------------------------

GITHUB_REQUESTS = Counter(
    "aw_github_requests_total",
    "Requests sent to GitHub (every attempt), by method, route template (GitHub's documented "
    "path, e.g. /repos/{owner}/{repo}/issues/{issue_number}/comments; `other` when unknown) "
    "and status (the HTTP status, or `error` when no answer came).",
    ["method", "route", "status"],
    registry=REGISTRY,
)
RATE_LIMIT_WAITS = Counter(
    "aw_github_rate_limit_waits_total",
    "Times a request waited for a GitHub rate limit (primary, secondary or retry-after).",
    registry=REGISTRY,
)
RATE_LIMIT_WAITED = Counter(
    "aw_github_rate_limit_wait_seconds_total",
    "Seconds spent waiting for GitHub rate limits.",
    registry=REGISTRY,
)
