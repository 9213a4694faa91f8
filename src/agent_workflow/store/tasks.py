"""Tasks: one row per (repo, issue) — G1.

A repository is named by its id when the event carries it (`repository.id`, which a
rename or transfer keeps) and by `owner/name` otherwise: `same_issue` is that rule in
SQL, and `renamed` moves a task to the name its repository has now.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update

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
            repo_id=info.repo_id,
            installation_id=info.installation_id,
            key_repo=info.repo,
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
                query = select(tasks).where(same_issue(info.repo, info.repo_id, info.issue_number))
                row = (await conn.execute(query)).mappings().one()
        return task_from_row(row)

    async def get(self, task_id: int) -> Task | None:
        """The task with this id, or None."""
        async with self._db.connect() as conn:
            row = (
                (await conn.execute(select(tasks).where(tasks.c.id == task_id))).mappings().first()
            )
        return task_from_row(row) if row else None

    async def find(self, repo: str, issue_number: int, repo_id: int | None = None) -> Task | None:
        """The task of this issue (by the repository's id when given), or None."""
        stmt = select(tasks).where(same_issue(repo, repo_id, issue_number))
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

    async def by_pull_request(
        self, repo: str, pr_number: int, repo_id: int | None = None
    ) -> Task | None:
        """The task whose delivered pull request is `pr_number` in `repo` (by the
        repository's id when given)."""
        stmt = select(tasks).where(same_repo(repo, repo_id), tasks.c.pr_number == pr_number)
        async with self._db.connect() as conn:
            row = (await conn.execute(stmt)).mappings().first()
        return task_from_row(row) if row else None

    async def renamed(self, task_id: int, repo: str, repo_id: int, now: float) -> Task | None:
        """Move the task to its repository's current `owner/name` and id (one statement).

        Its effect keys keep the name it was created under (`key_repo`, set here for a
        row from before that column). None when the task is gone.
        """
        stmt = (
            update(tasks)
            .where(tasks.c.id == task_id)
            .values(
                repo=repo,
                repo_id=repo_id,
                key_repo=func.coalesce(tasks.c.key_repo, tasks.c.repo),
                updated_at=now,
            )
            .returning(*tasks.c)
        )
        async with self._db.begin() as conn:
            row = (await conn.execute(stmt)).mappings().first()
        return task_from_row(row) if row else None

    async def set_installation(self, task_id: int, installation_id: int, now: float) -> Task | None:
        """The task's events now come through `installation_id` (a repository moved to
        another installation): its token acts for the task from now on. None: no task."""
        stmt = (
            update(tasks)
            .where(tasks.c.id == task_id)
            .values(installation_id=installation_id, updated_at=now)
            .returning(*tasks.c)
        )
        async with self._db.begin() as conn:
            row = (await conn.execute(stmt)).mappings().first()
        return task_from_row(row) if row else None

    async def installation_of(self, repo: str) -> int | None:
        """The installation the latest event of a task in `repo` came through (None:
        none known). The GitHub adapter asks this before asking GitHub."""
        stmt = (
            select(tasks.c.installation_id)
            .where(tasks.c.repo == repo, tasks.c.installation_id.is_not(None))
            .order_by(tasks.c.updated_at.desc())
            .limit(1)
        )
        async with self._db.connect() as conn:
            found = (await conn.execute(stmt)).scalar_one_or_none()
        return None if found is None else int(found)

    async def hold(
        self,
        reason: str,
        now: float,
        *,
        installation_id: int | None = None,
        repo_ids: Sequence[int] = (),
    ) -> int:
        """Hold the tasks of an installation, or of these repositories: nothing runs for
        them until `release` (the sweeper skips them, the router answers with `reason`).
        Returns how many were held; idempotent."""
        stmt = (
            update(tasks)
            .where(_scope(installation_id, repo_ids))
            .values(held_reason=reason, updated_at=now)
        )
        async with self._db.begin() as conn:
            return (await conn.execute(stmt)).rowcount

    async def release(
        self,
        reason: str,
        now: float,
        *,
        installation_id: int | None = None,
        repo_ids: Sequence[int] = (),
    ) -> int:
        """Release the tasks `hold` held for `reason` (only those: another hold stays)."""
        stmt = (
            update(tasks)
            .where(_scope(installation_id, repo_ids), tasks.c.held_reason == reason)
            .values(held_reason=None, updated_at=now)
        )
        async with self._db.begin() as conn:
            return (await conn.execute(stmt)).rowcount

    async def all(self) -> list[Task]:
        """Every task, by id (for status and checks)."""
        async with self._db.connect() as conn:
            rows = (await conn.execute(select(tasks).order_by(tasks.c.id))).mappings().all()
        return [task_from_row(r) for r in rows]


def _scope(installation_id: int | None, repo_ids: Sequence[int]) -> ColumnElement[bool]:
    if installation_id is not None and not repo_ids:
        return tasks.c.installation_id == installation_id
    return tasks.c.repo_id.in_(list(repo_ids))


def same_repo(repo: Any, repo_id: Any) -> ColumnElement[bool]:
    """A task row of this repository: by its id when both sides know it, else by name.

    `repo` and `repo_id` are values or SQL expressions (the join of `deliveries`). A row
    whose id differs is another repository, even under the same name (a name freed by a
    rename and taken again).
    """
    by_name: ColumnElement[bool] = tasks.c.repo == repo
    if repo_id is None:
        return by_name
    unknown: ColumnElement[bool] = tasks.c.repo_id.is_(None)
    if isinstance(repo_id, ColumnElement):  # NULL in some rows: then by name alone
        unknown = or_(unknown, repo_id.is_(None))
    return or_(tasks.c.repo_id == repo_id, and_(by_name, unknown))


def same_issue(repo: Any, repo_id: Any, issue_number: Any) -> ColumnElement[bool]:
    """The task row of this issue (see `same_repo`)."""
    return and_(same_repo(repo, repo_id), tasks.c.issue_number == issue_number)


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
        repo_id=row["repo_id"],
        key_repo=row["key_repo"] or "",
        installation_id=row["installation_id"],
        held_reason=row["held_reason"],
    )
