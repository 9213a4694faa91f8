"""The worktree janitor: a worker's disk holds the worktrees of work in flight, no more.

A worktree is released by the run that made it once its attempt is over (see
`agents.phase_work`), but some are left behind: an attempt that ended in errors
until its phase `failed` (each error keeps the worktree for the session's resume),
a worker killed or frozen past its lease (it releases nothing), a run whose release
failed. And each leaves its local branch in the shared clone.

Each pass looks at every task directory on this machine's disk and removes it (its
worktrees, and the task's local branches in the clone) when no phase of the task
is pending or active, or when no checkout touched it for `max_age_s` whatever the
database says (a task the database does not know waits for that bound). A blocked or failed phase never reuses a worktree: its retry is a new
attempt, which checks out afresh from the pushed branch. The decision is taken with
the clone's lock held (`Workspace.remove_task_dir`), so a checkout never races it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import structlog

from agent_workflow.store.db import Store
from agent_workflow.workspace.workspace import TaskDir, Workspace, repo_dirname

log = structlog.get_logger(__name__)


class WorktreeJanitor:
    """Removes the worktrees of settled (or long untouched) tasks from one workspace root."""

    def __init__(
        self,
        store: Store,
        workspace: Workspace,
        clock: Callable[[], float],
        *,
        max_age_s: float,
    ) -> None:
        self._store = store
        self._workspace = workspace
        self._clock = clock
        self._max_age = max_age_s

    async def run_once(self) -> int:
        """One pass; returns how many task directories were removed. A directory that
        cannot be looked at or removed is logged and left for the next pass."""
        removed = 0
        for task_dir in await self._workspace.task_dirs():
            try:
                gone = await self._workspace.remove_task_dir(
                    task_dir, functools.partial(self._in_use, task_dir)
                )
            except Exception as exc:
                log.warning(
                    "janitor.failed",
                    path=str(task_dir.path),
                    error=f"{type(exc).__name__}: {exc}",
                )
                continue
            if gone:
                removed += 1
                log.info("janitor.removed", path=str(task_dir.path))
        return removed

    async def _in_use(self, task_dir: TaskDir) -> bool:
        """False once a checkout last touched it `max_age_s` ago, or once every phase of its
        task is final. A directory whose task this database does not know is left to the
        age bound: it may be another deployment's sharing the directory by mistake."""
        if self._clock() - task_dir.touched_at > self._max_age:
            return False
        known = False
        for task in await self._store.tasks.with_issue_number(task_dir.issue_number):
            if repo_dirname(task.repo) != task_dir.repo_dir:
                continue  # the same issue number in another repository
            known = True
            runs = await self._store.phases.for_task(task.id)
            if any(not run.status.is_final for run in runs):
                return True
        return not known
