"""agent runs mark a session started

The audit row inserted when an agent starts is what marks the attempt's session as
started (claims ask for it through an index), so `phase_runs.started_attempt`, which
cost a second write per start, is gone.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agent_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_agent_runs_phase_run_attempt", ["phase_run_id", "attempt"], unique=False
        )
    with op.batch_alter_table("phase_runs", schema=None) as batch_op:
        batch_op.drop_column("started_attempt")


def downgrade() -> None:
    with op.batch_alter_table("phase_runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("started_attempt", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("agent_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_agent_runs_phase_run_attempt")
