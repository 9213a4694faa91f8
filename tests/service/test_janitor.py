"""The worktree janitor (issue 10 §8): worktrees and local task branches of tasks whose
phases are all final, or untouched for `max_age_s`, are removed; those of work in flight
stay. Real git repositories (a bare remote, the workspace's clone) and a real store."""

from __future__ import annotations

import os
import time
from pathlib import Path

from agent_workflow.core.model import Phase, PhaseRun, PhaseStatus
from agent_workflow.core.ports import AgentResult, Outcome
from agent_workflow.service.janitor import WorktreeJanitor
from agent_workflow.store import Store
from agent_workflow.workspace import Workspace, Worktree
from tests.conftest import FakeClock
from tests.support.events import task_info
from tests.support.git_seed import make_remote, remote_sha

DAY = 86_400.0
MAX_AGE_S = 7 * DAY


async def _checkout(
    workspace: Workspace, remote: str, issue: int, repo: str = "octo/demo"
) -> Worktree:
    """The deliver worktree of `issue`, as a run leaves it when it is not released."""
    worktree = await workspace.checkout(
        repo,
        remote,
        issue_number=issue,
        name="deliver",
        base_branch="main",
        branch=f"agent/issue-{issue}",
    )
    (worktree.path / "work.txt").write_text("half done\n")
    return worktree


async def _phase(
    store: Store, clock: FakeClock, issue: int, status: PhaseStatus, repo: str = "octo/demo"
) -> PhaseRun:
    """The deliver phase of `issue` claimed (ACTIVE), or ended as `status`; the claim."""
    task = await store.tasks.ensure(task_info(issue, repo=repo), clock())
    run = await store.phases.ensure(task.id, Phase.DELIVER, f"d-{issue}", clock())
    claimed = await store.phases.claim(run.task_id, run.phase, "worker", 30.0, clock())
    assert claimed is not None
    if status is not PhaseStatus.ACTIVE:
        await _end(store, clock, claimed, status)
    return claimed


async def _end(store: Store, clock: FakeClock, claimed: PhaseRun, status: PhaseStatus) -> None:
    """The claimed phase's agent ends: `complete`, or `failed` at its first error (which
    keeps the worktree for a resume that will never come)."""
    agent_run = await store.phases.start_agent(
        claimed.guard, session_id="s", mode="fresh", owner="worker", now=clock()
    )
    failed = status is PhaseStatus.FAILED
    ended = await store.phases.finish(
        claimed.guard,
        agent_run,
        PhaseStatus.PENDING if failed else status,
        AgentResult(Outcome.ERROR if failed else Outcome.SUCCESS),
        max_failures=1,
        effects_lease_s=30.0,
        now=clock(),
    )
    assert ended.status is status


def _age(worktree: Worktree, seconds: float) -> None:
    """Make the worktree's last checkout `seconds` old (its stamp, its directories)."""
    then = time.time() - seconds
    assert worktree.admin is not None
    for path in (worktree.admin / "aw-owner", worktree.path, worktree.path.parent):
        os.utime(path, (then, then))


async def _local_branches(workspace: Workspace, repo: str = "octo/demo") -> list[str]:
    out = await workspace.git.run(
        "for-each-ref", "--format=%(refname:short)", "refs/heads/", cwd=workspace.clone_path(repo)
    )
    return out.split()


async def test_janitor__removes_settled_tasks_keeps_work_in_flight(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    """Issue 1 failed after an error (its worktree was kept for a resume that will never
    come), issue 2 completed but its worker lost the lease (released nothing), issue 3 is
    still being delivered, issue 4 has no task in this database (left to the age bound:
    it may be another deployment's)."""
    remote = await make_remote(tmp_path / "remote.git", {"README.md": "hello\n"})
    workspace = Workspace(tmp_path / "ws")
    trees = {n: await _checkout(workspace, remote, n) for n in (1, 2, 3, 4)}
    await _phase(store, clock, 1, PhaseStatus.FAILED)
    await _phase(store, clock, 2, PhaseStatus.COMPLETE)
    in_flight = await _phase(store, clock, 3, PhaseStatus.ACTIVE)
    janitor = WorktreeJanitor(store, Workspace(tmp_path / "ws"), time.time, max_age_s=MAX_AGE_S)

    assert await janitor.run_once() == 2

    assert [n for n, t in trees.items() if t.path.exists()] == [3, 4]
    assert await _local_branches(workspace) == ["agent/issue-3", "agent/issue-4"]
    clone = workspace.clone_path("octo/demo")
    listed = await workspace.git.run("worktree", "list", "--porcelain", cwd=clone)
    assert str(trees[1].path) not in listed
    assert str(trees[3].path) in listed
    assert await remote_sha(remote, "main") is not None  # the remote is never touched
    assert await janitor.run_once() == 0  # the one in flight stays, pass after pass

    # Once its phase is over, it goes too; and a new checkout of it works afresh.
    await _end(store, clock, in_flight, PhaseStatus.COMPLETE)
    assert await janitor.run_once() == 1
    assert not trees[3].path.exists()
    assert await _local_branches(workspace) == ["agent/issue-4"]
    again = await _checkout(workspace, remote, 3)
    assert (again.path / "README.md").read_text() == "hello\n"


async def test_janitor__a_task_untouched_past_the_bound_goes_whatever_its_state(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    """A phase stuck `active` (or a task this database cannot see) does not pin its
    worktree for ever: a checkout older than `max_age_s` is removed."""
    remote = await make_remote(tmp_path / "remote.git", {"README.md": "hello\n"})
    workspace = Workspace(tmp_path / "ws")
    stuck, fresh = await _checkout(workspace, remote, 5), await _checkout(workspace, remote, 6)
    unknown = await _checkout(workspace, remote, 8)  # no task in this database
    await _phase(store, clock, 5, PhaseStatus.ACTIVE)
    await _phase(store, clock, 6, PhaseStatus.ACTIVE)
    _age(stuck, MAX_AGE_S + 60)
    _age(unknown, MAX_AGE_S + 60)
    _age(fresh, MAX_AGE_S - 60)
    janitor = WorktreeJanitor(store, workspace, time.time, max_age_s=MAX_AGE_S)

    assert await janitor.run_once() == 2

    assert not stuck.path.exists()
    assert not unknown.path.exists()
    assert fresh.path.exists()
    assert await _local_branches(workspace) == ["agent/issue-6"]


async def test_janitor__the_same_issue_in_another_repository_does_not_pin_it(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    """Directories name the issue; the janitor matches the repository too."""
    remote = await make_remote(tmp_path / "remote.git", {"README.md": "hello\n"})
    workspace = Workspace(tmp_path / "ws")
    other = await _checkout(workspace, remote, 7, repo="acme/other")
    await _phase(store, clock, 7, PhaseStatus.ACTIVE)  # octo/demo#7 is in flight
    await _phase(store, clock, 7, PhaseStatus.COMPLETE, repo="acme/other")
    janitor = WorktreeJanitor(store, workspace, time.time, max_age_s=MAX_AGE_S)

    assert await janitor.run_once() == 1
    assert not other.path.exists()
    assert await _local_branches(workspace, "acme/other") == []
