"""tasks.repo_id (GitHub's repository id, kept through renames and transfers) and
tasks.key_repo (the `owner/name` a task's effect keys are named with)

A task is found by (repo_id, issue_number) once its repository's id is known, and its
`repo` follows the current name. Existing tasks learn their id here from the deliveries
still in the inbox (a payload names the repository's id beside its name), otherwise from
the next event that names their repository.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_tasks = sa.table("tasks", sa.column("repo", sa.String), sa.column("repo_id", sa.BigInteger))
_deliveries = sa.table("deliveries", sa.column("id", sa.Integer), sa.column("payload", _JSON))


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("repo_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("key_repo", sa.String(length=300), nullable=True))
        batch_op.create_unique_constraint("uq_tasks_repo_id_issue", ["repo_id", "issue_number"])
    repository = _deliveries.c.payload["repository"]
    newest_id = (
        sa.select(repository["id"].as_integer())
        .where(repository["full_name"].as_string() == _tasks.c.repo)
        .order_by(_deliveries.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    op.execute(_tasks.update().where(_tasks.c.repo_id.is_(None)).values(repo_id=newest_id))


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_constraint("uq_tasks_repo_id_issue", type_="unique")
        batch_op.drop_column("key_repo")
        batch_op.drop_column("repo_id")
