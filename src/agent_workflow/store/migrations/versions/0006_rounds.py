"""rounds (revise/repair after the pull request, one per trigger) and tasks.head_sha

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("head_sha", sa.String(length=64), nullable=True))
    op.create_index("ix_tasks_pr_number", "tasks", ["repo", "pr_number"])
    op.create_table(
        "rounds",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.Integer(), sa.ForeignKey("tasks.id"), nullable=False),
        sa.Column("phase", sa.String(length=20), nullable=False),
        sa.Column("trigger_key", sa.String(length=200), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("work", _JSON, nullable=False),
        sa.Column("pushed_sha", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("task_id", "phase", "trigger_key", name="uq_rounds_trigger"),
        sa.UniqueConstraint("task_id", "phase", "attempt", name="uq_rounds_attempt"),
    )


def downgrade() -> None:
    op.drop_table("rounds")
    op.drop_index("ix_tasks_pr_number", table_name="tasks")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("head_sha")
