"""tasks.installation_id (the GitHub App installation acting for a task), tasks.held_reason
(why nothing runs for it now), and the installations table (suspended/deleted ones)

With App credentials and no fixed `AW_GITHUB_INSTALLATION_ID`, each event's
`installation.id` selects the installation whose token acts for its task. Existing tasks
learn theirs from the next event that names them (or GitHub, when a call needs it).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("installation_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("held_reason", sa.Text(), nullable=True))
        batch_op.create_index("ix_tasks_installation_id", ["installation_id"], unique=False)
    op.create_table(
        "installations",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("account", sa.String(length=300), server_default="", nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("installations")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_installation_id")
        batch_op.drop_column("held_reason")
        batch_op.drop_column("installation_id")
