"""model_usage (what each model response the agent's proxy forwarded cost); indexes for
retention (deliveries by age) and the worktree janitor (tasks by issue number)

One row per response (unique `request_id`), written as the response starts and
again as it ends, so the spending of a run killed mid-way is counted; the task's
spending is the larger of these rows' sum and the runs' reported costs.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_usage",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.Integer(), sa.ForeignKey("tasks.id"), nullable=False),
        sa.Column("phase", sa.String(length=20), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=200), server_default="", nullable=False),
        sa.Column("input_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("output_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cache_creation_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cache_read_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cost_usd", sa.Float(), server_default="0", nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("request_id", name="uq_model_usage_request"),
    )
    op.create_index("ix_model_usage_task", "model_usage", ["task_id"])
    op.create_index("ix_deliveries_received_at", "deliveries", ["received_at"])
    op.create_index("ix_tasks_issue_number", "tasks", ["issue_number"])


def downgrade() -> None:
    op.drop_index("ix_tasks_issue_number", table_name="tasks")
    op.drop_index("ix_deliveries_received_at", table_name="deliveries")
    op.drop_index("ix_model_usage_task", table_name="model_usage")
    op.drop_table("model_usage")
