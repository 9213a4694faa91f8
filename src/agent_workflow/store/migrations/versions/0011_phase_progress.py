"""phase_runs.progress: the live progress text of the attempt that is running

The progress comment on GitHub is edited as the agent works; the same text is kept with
the phase run (fenced, like every write of an attempt) so the dashboard shows it without
a GitHub read.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("phase_runs") as batch:
        batch.add_column(sa.Column("progress", sa.Text(), nullable=True))
        batch.add_column(sa.Column("progress_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("phase_runs") as batch:
        batch.drop_column("progress_at")
        batch.drop_column("progress")
