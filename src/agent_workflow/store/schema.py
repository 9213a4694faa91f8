"""Every table, declared once (SQLAlchemy Core). Times are epoch seconds (float).

The constraints are the guarantees: `deliveries` unique per (hook, delivery),
`tasks` unique per (repo, issue) and per (repository id, issue) for G1, `phase_runs`
unique per (task, phase) with a fencing token for G2/G5, `effects` unique per key for G3.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

Json = JSON().with_variant(JSONB(), "postgresql")

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(200), nullable=False),
    Column("hook_id", String(100), nullable=False, server_default=""),
    Column("event", String(100), nullable=False),
    Column("action", String(100), nullable=False, server_default=""),
    Column("payload", Json, nullable=False),
    # The `Event` the ingress parsed with the configured triggers; routing uses it as
    # stored and never parses the payload again. NULL only in rows stored before it existed.
    Column("parsed", Json, nullable=True),
    Column("received_at", Float, nullable=False),
    Column("routed_at", Float, nullable=True),
    Column("route_attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    # SHA-256 of the raw body: a body already accepted is a duplicate whatever its
    # delivery id (the signature covers only the body). NULL only in older rows.
    Column("body_sha256", String(64), nullable=True),
    # Set when routing failed `AW_MAX_ROUTE_ATTEMPTS` times: never retried automatically.
    Column("dead_at", Float, nullable=True),
    UniqueConstraint("delivery_id", "hook_id", name="uq_deliveries_delivery"),
    UniqueConstraint("body_sha256", name="uq_deliveries_body_sha256"),
)
Index("ix_deliveries_unrouted", deliveries.c.routed_at, deliveries.c.received_at)
# The retention delete takes the oldest rows first.
Index("ix_deliveries_received_at", deliveries.c.received_at)

tasks = Table(
    "tasks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("repo", String(300), nullable=False),
    Column("issue_number", Integer, nullable=False),
    Column("title", Text, nullable=False, server_default=""),
    Column("body", Text, nullable=False, server_default=""),
    Column("clone_url", Text, nullable=False, server_default=""),
    Column("default_branch", String(255), nullable=False, server_default="main"),
    Column("pr_number", Integer, nullable=True),
    # The head of the task's pull request as we last pushed it (deliver, then each
    # round): failing checks start a repair round only on this commit.
    Column("head_sha", String(64), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # GitHub's id of the repository: a rename or transfer keeps it, so a task is found by
    # (repo_id, issue_number) and `repo` follows the current name. NULL only in rows
    # created before ids were kept (found by `repo` until an event names their id).
    Column("repo_id", BigInteger, nullable=True),
    # The `owner/name` the task was created under, which its effect keys are named with
    # (see `Task.key_repo`). NULL in older rows: their `repo` is that name until a rename.
    Column("key_repo", String(300), nullable=True),
    # The GitHub App installation whose token acts for the task: the one its latest event
    # came through (NULL with token auth, or before installations were kept).
    Column("installation_id", BigInteger, nullable=True),
    # Why nothing runs for the task now (installation suspended/deleted, repository
    # removed from it); NULL while it may run. `aw status` shows it.
    Column("held_reason", Text, nullable=True),
    UniqueConstraint("repo", "issue_number", name="uq_tasks_issue"),
    UniqueConstraint("repo_id", "issue_number", name="uq_tasks_repo_id_issue"),
)
# An installation's events hold and release its tasks.
Index("ix_tasks_installation_id", tasks.c.installation_id)

# GitHub App installations we were told about by `installation` events: a suspended or
# deleted one starts nothing (its events are answered "installation suspended").
installations = Table(
    "installations",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("account", String(300), nullable=False, server_default=""),
    Column("state", String(20), nullable=False),  # active | suspended | deleted
    Column("updated_at", Float, nullable=False),
)

# The worktree janitor finds a directory's task by its issue number.
Index("ix_tasks_issue_number", tasks.c.issue_number)
# A comment on a pull request names only the PR: its task is found by it.
Index("ix_tasks_pr_number", tasks.c.repo, tasks.c.pr_number)

phase_runs = Table(
    "phase_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", Integer, ForeignKey("tasks.id"), nullable=False),
    Column("phase", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempt", Integer, nullable=False, server_default="1"),
    Column("fence", Integer, nullable=False, server_default="0"),
    Column("lease_owner", String(200), nullable=True),
    Column("lease_until", Float, nullable=True),
    Column("trigger_delivery", String(200), nullable=True),
    Column("session_id", String(64), nullable=True),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("effects_done", Boolean, nullable=False, server_default="0"),
    Column("result_text", Text, nullable=True),
    Column("blocked_reason", Text, nullable=True),
    Column("artifacts", Json, nullable=True),
    Column("cost_usd", Float, nullable=False, server_default="0"),
    Column("turns", Integer, nullable=False, server_default="0"),
    Column("duration_s", Float, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    # The running attempt's live progress text (its progress comment's latest body).
    Column("progress", Text, nullable=True),
    Column("progress_at", Float, nullable=True),
    UniqueConstraint("task_id", "phase", name="uq_phase_runs_task_phase"),
)
Index("ix_phase_runs_status_lease", phase_runs.c.status, phase_runs.c.lease_until)

agent_runs = Table(
    "agent_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("phase_run_id", Integer, ForeignKey("phase_runs.id"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("fence", Integer, nullable=False),
    Column("session_id", String(64), nullable=False),
    Column("mode", String(10), nullable=False),  # fresh | resume
    Column("owner", String(200), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("outcome", String(20), nullable=True),
    Column("restarted", Boolean, nullable=False, server_default="0"),
    Column("cost_usd", Float, nullable=False, server_default="0"),
    Column("turns", Integer, nullable=False, server_default="0"),
    Column("duration_s", Float, nullable=False, server_default="0"),
    Column("terminal_reason", Text, nullable=True),
)
# A claim asks whether its attempt's session was started (an audit row exists): a claim
# of that same attempt must resume it rather than start a second one (G2).
Index("ix_agent_runs_phase_run_attempt", agent_runs.c.phase_run_id, agent_runs.c.attempt)

effects = Table(
    "effects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(400), nullable=False),
    Column("task_id", Integer, ForeignKey("tasks.id"), nullable=True),
    Column("phase", String(20), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("kind", String(30), nullable=False),
    Column("status", String(20), nullable=False),  # started | done | refused
    Column("external_id", String(100), nullable=True),
    Column("fingerprint", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("done_at", Float, nullable=True),
    UniqueConstraint("key", name="uq_effects_key"),
)

model_usage = Table(
    "model_usage",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # One row per model response the agent's proxy forwarded (its own id for it),
    # written when the response starts and again when it ends: a killed run's
    # spending is counted up to its last response.
    Column("request_id", String(64), nullable=False),
    Column("task_id", Integer, ForeignKey("tasks.id"), nullable=False),
    Column("phase", String(20), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("model", String(200), nullable=False, server_default=""),
    Column("input_tokens", Integer, nullable=False, server_default="0"),
    Column("output_tokens", Integer, nullable=False, server_default="0"),
    Column("cache_creation_tokens", Integer, nullable=False, server_default="0"),
    Column("cache_read_tokens", Integer, nullable=False, server_default="0"),
    Column("cost_usd", Float, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("request_id", name="uq_model_usage_request"),
)
# The proxy sums a task's spending before every model request.
Index("ix_model_usage_task", model_usage.c.task_id)

rounds = Table(
    "rounds",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", Integer, ForeignKey("tasks.id"), nullable=False),
    Column("phase", String(20), nullable=False),  # revise | repair
    # What started it (`review:<id>`, `comment:<id>`, `checks:<sha>`): one round per
    # trigger, whatever the redeliveries, duplicate jobs and workers.
    Column("trigger_key", String(200), nullable=False),
    Column("attempt", Integer, nullable=False),  # the phase attempt that runs it
    Column("number", Integer, nullable=False),  # the n-th round of the phase for the task
    Column("work", Json, nullable=False),  # the trigger and the input read when it opened
    Column("pushed_sha", String(64), nullable=True),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("task_id", "phase", "trigger_key", name="uq_rounds_trigger"),
    UniqueConstraint("task_id", "phase", "attempt", name="uq_rounds_attempt"),
)

agent_slots = Table(
    "agent_slots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # One row per agent run that held a slot (AW_MAX_AGENTS, AW_MAX_AGENTS_PER_REPO count
    # the live ones across every worker): live while not released and its lease not past.
    Column("repo", String(300), nullable=False),
    Column("holder", String(200), nullable=False),  # the worker's AW_OWNER
    Column("phase_run_id", Integer, nullable=True),  # what it runs (for `aw status`)
    Column("acquired_at", Float, nullable=False),
    Column("lease_until", Float, nullable=False),  # renewed by the holder's heartbeat
    Column("released_at", Float, nullable=True),  # kept as history until the retention
)
# An acquire counts the unreleased rows, overall and for its repository.
Index("ix_agent_slots_live", agent_slots.c.released_at, agent_slots.c.repo)

session_entries = Table(
    "session_entries",
    metadata,
    # Autoincrement on both engines (SQLite's rowid needs INTEGER): the load order.
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    # One line of a Claude Code session transcript, mirrored through the SDK's SessionStore.
    # `project_key` is the CLI's sanitised cwd where the line was written: recorded, not part
    # of the identity (a worktree's path differs from machine to machine; the session id is
    # a UUID of task, phase and attempt).
    Column("project_key", String(300), nullable=False, server_default=""),
    Column("session_id", String(100), nullable=False),
    Column("subpath", String(300), nullable=False, server_default=""),  # "": the main transcript
    Column("uuid", String(100), nullable=True),  # the line's own id: a repeated append is ignored
    # The line as JSON text with every non-ASCII character escaped: exact round trip of
    # whatever the repository put into tool outputs (NUL, lone surrogates), which JSONB refuses.
    Column("entry", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("session_id", "subpath", "uuid", name="uq_session_entries_uuid"),
)
# A load reads one session's lines in order; the retention deletes the oldest first.
Index(
    "ix_session_entries_key",
    session_entries.c.session_id,
    session_entries.c.subpath,
    session_entries.c.id,
)
Index("ix_session_entries_created_at", session_entries.c.created_at)
