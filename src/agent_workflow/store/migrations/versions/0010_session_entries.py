"""session_entries: Claude Code session transcripts mirrored through the SDK's SessionStore

A worker on another machine resumes a session that a dead worker started: the CLI's
transcript lives in the dead worker's home, its lines are also here.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "session_entries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("project_key", sa.String(length=300), server_default="", nullable=False),
        sa.Column("session_id", sa.String(length=100), nullable=False),
        sa.Column("subpath", sa.String(length=300), server_default="", nullable=False),
        sa.Column("uuid", sa.String(length=100), nullable=True),
        sa.Column("entry", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id", "subpath", "uuid", name="uq_session_entries_uuid"),
    )
    op.create_index(
        "ix_session_entries_key", "session_entries", ["session_id", "subpath", "id"], unique=False
    )
    op.create_index(
        "ix_session_entries_created_at", "session_entries", ["created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_session_entries_created_at", table_name="session_entries")
    op.drop_index("ix_session_entries_key", table_name="session_entries")
    op.drop_table("session_entries")
