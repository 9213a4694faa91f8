"""Tasks: one row per (repo, issue) — G1."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from agent_workflow.core.model import Task, TaskInfo
from agent_workflow.store.connections import Database
from agent_workflow.store.schema import tasks
from agent_workflow.store.sql import insert_ignore


class Tasks:
    """SQL for the `tasks` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def ensure(self, info: TaskInfo, now: float) -> Task:
        """Insert if absent, then read: concurrent callers all get the one row.

        An existing task is returned untouched (G1: never reset).
        """
        stmt = insert_ignore(
            self._db.dialect,
            tasks,
            repo=info.repo,
            issue_number=info.issue_number,
            title=info.title,
            body=info.body,
            clone_url=info.clone_url,
            default_branch=info.default_branch,
            created_at=now,
            updated_at=now,
        ).returning(*tasks.c)
        async with self._db.begin() as conn:
            row = (await conn.execute(stmt)).mappings().first()
            if row is None:  # it existed (or a concurrent caller just made it): read it
                query = select(tasks).where(
                    tasks.c.repo == info.repo, tasks.c.issue_number == info.issue_number
                )
                row = (await conn.execute(query)).mappings().one()
        return task_from_row(row)

    async def get(self, task_id: int) -> Task | None:
        """The task with this id, or None."""
        async with self._db.connect() as conn:
            row = (
                (await conn.execute(select(tasks).where(tasks.c.id == task_id))).mappings().first()
            )
        return task_from_row(row) if row else None

    async def find(self, repo: str, issue_number: int) -> Task | None:
        """The task of this issue, or None."""
        stmt = select(tasks).where(tasks.c.repo == repo, tasks.c.issue_number == issue_number)
        async with self._db.connect() as conn:
            row = (await conn.execute(stmt)).mappings().first()
        return task_from_row(row) if row else None

    async def with_issue_number(self, issue_number: int) -> list[Task]:
        """The tasks of issue `issue_number` in any repository (the worktree janitor's
        question: a directory names the issue, and the repository only in a lossy form)."""
        stmt = select(tasks).where(tasks.c.issue_number == issue_number).order_by(tasks.c.id)
        async with self._db.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [task_from_row(r) for r in rows]

    async def set_pr_number(self, task_id: int, pr_number: int, now: float) -> None:
        """Remember the delivered pull request (idempotent)."""
        stmt = (
            update(tasks).where(tasks.c.id == task_id).values(pr_number=pr_number, updated_at=now)
        )
        async with self._db.begin() as conn:
            await conn.execute(stmt)

    async def by_pull_request(self, repo: str, pr_number: int) -> Task | None:
        """The task whose delivered pull request is `pr_number` in `repo`."""
        stmt = select(tasks).where(tasks.c.repo == repo, tasks.c.pr_number == pr_number)
        async with self._db.connect() as conn:
            row = (await conn.execute(stmt)).mappings().first()
        return task_from_row(row) if row else None

    async def all(self) -> list[Task]:
        """Every task, by id (for status and checks)."""
        async with self._db.connect() as conn:
            rows = (await conn.execute(select(tasks).order_by(tasks.c.id))).mappings().all()
        return [task_from_row(r) for r in rows]


def task_from_row(row: Any) -> Task:
    """A `Task` from a `tasks` row mapping."""
    return Task(
        id=row["id"],
        repo=row["repo"],
        issue_number=row["issue_number"],
        title=row["title"],
        body=row["body"],
        clone_url=row["clone_url"],
        default_branch=row["default_branch"],
        pr_number=row["pr_number"],
        head_sha=row["head_sha"],
    )
