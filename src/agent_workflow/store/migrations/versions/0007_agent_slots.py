"""agent_slots (deployment-wide AW_MAX_AGENTS / AW_MAX_AGENTS_PER_REPO, leased per run)

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_slots",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("repo", sa.String(length=300), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("phase_run_id", sa.Integer(), nullable=True),
        sa.Column("acquired_at", sa.Float(), nullable=False),
        sa.Column("lease_until", sa.Float(), nullable=False),
        sa.Column("released_at", sa.Float(), nullable=True),
    )
    op.create_index("ix_agent_slots_live", "agent_slots", ["released_at", "repo"])


def downgrade() -> None:
    op.drop_index("ix_agent_slots_live", table_name="agent_slots")
    op.drop_table("agent_slots")
