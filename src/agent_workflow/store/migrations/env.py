"""Alembic environment: runs on the connection the application hands it."""

from __future__ import annotations

from alembic import context

from agent_workflow.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - offline mode is not supported
    raise RuntimeError("migrations run through agent_workflow.store.db.upgrade() only")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
