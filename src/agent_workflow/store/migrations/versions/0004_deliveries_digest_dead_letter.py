"""deliveries: a digest of the raw body (replays) and a dead-letter mark

`body_sha256` is unique, so a body already accepted is a duplicate whatever its
delivery id; `dead_at` marks a delivery whose routing failed `AW_MAX_ROUTE_ATTEMPTS`
times, which the sweeper no longer re-enqueues. Both are NULL in older rows.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("body_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("dead_at", sa.Float(), nullable=True))
        batch_op.create_unique_constraint("uq_deliveries_body_sha256", ["body_sha256"])


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint("uq_deliveries_body_sha256", type_="unique")
        batch_op.drop_column("dead_at")
        batch_op.drop_column("body_sha256")
