"""Workspace: cached clones, deterministic worktrees, commits and idempotent pushes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent_workflow.workspace import GitAuthor, GitError, Workspace
from agent_workflow.workspace.git import Git
from tests.support.git_seed import push_commit, remote_file, remote_log, remote_sha
from tests.workspace.conftest import REPO

BRANCH = "agent/issue-7"


async def _deliver_checkout(ws: Workspace, remote: str, *, keep: bool = False) -> Path:
    wt = await ws.checkout(
        REPO, remote, issue_number=7, name="deliver", base_branch="main", branch=BRANCH, keep=keep
    )
    return wt.path


async def test_checkout__a_branch_worktree_starts_from_the_fetched_base(
    workspace: Workspace, remote: str
) -> None:
    wt = await workspace.checkout(
        REPO, remote, issue_number=7, name="deliver", base_branch="main", branch=BRANCH
    )
    assert wt.path == workspace.task_dir(REPO, 7) / "deliver"
    assert (wt.path / "README.md").read_text() == "hello\n"
    assert wt.start_sha == await remote_sha(remote, "main")
    assert await workspace.head(wt) == wt.start_sha

    newer = await push_commit(remote, "main", {"NEW.md": "new\n"}, "newer")
    again = await workspace.checkout(
        REPO, remote, issue_number=8, name="deliver", base_branch="main", branch="agent/issue-8"
    )
    assert again.start_sha == newer  # fetched before the checkout
    assert workspace.clone_path(REPO).is_dir()


async def test_checkout__a_detached_checkout_for_reading(workspace: Workspace, remote: str) -> None:
    wt = await workspace.checkout(REPO, remote, issue_number=7, name="plan", base_branch="main")
    assert wt.branch is None
    assert await workspace.head(wt) == await remote_sha(remote, "main")


async def test_commit_and_push__author_and_idempotence(workspace: Workspace, remote: str) -> None:
    ws = Workspace(workspace.root, author=GitAuthor("Bot", "bot@example.invalid"))
    wt = await ws.checkout(
        REPO, remote, issue_number=7, name="deliver", base_branch="main", branch=BRANCH
    )
    assert await ws.commit_all(wt, "nothing") is None
    (wt.path / "sub").mkdir()
    (wt.path / "sub" / "file.txt").write_text("x\n")

    sha = await ws.commit_all(wt, "Add file")

    assert sha is not None
    assert await ws.commits_ahead(wt) == 1
    assert await ws.push(wt) == sha
    assert await ws.push(wt) == sha  # the same commit again is fine
    assert await remote_sha(remote, BRANCH) == sha
    assert (await remote_log(remote, BRANCH))[0] == "Bot|Add file"


async def test_push__refuses_to_overwrite_a_branch_moved_by_someone_else(
    workspace: Workspace, remote: str
) -> None:
    path = await _deliver_checkout(workspace, remote)
    wt = await workspace.checkout(
        REPO, remote, issue_number=7, name="deliver", base_branch="main", branch=BRANCH, keep=True
    )
    await Git().run("branch", BRANCH, "main", cwd=Path(remote))
    await push_commit(remote, BRANCH, {"THEIRS.md": "theirs\n"}, "someone else")
    (path / "OURS.md").write_text("ours\n")
    await workspace.commit_all(wt, "ours")

    with pytest.raises(GitError):
        await workspace.push(wt)
    assert await remote_file(remote, BRANCH, "THEIRS.md") == "theirs\n"


async def test_checkout__a_retry_continues_from_the_pushed_branch(
    workspace: Workspace, remote: str
) -> None:
    path = await _deliver_checkout(workspace, remote)
    wt = await workspace.checkout(
        REPO, remote, issue_number=7, name="deliver", base_branch="main", branch=BRANCH, keep=True
    )
    (path / "PUSHED.md").write_text("pushed\n")
    pushed = await workspace.commit_all(wt, "pushed work")
    await workspace.push(wt)
    (path / "LOCAL.md").write_text("never pushed\n")
    await workspace.commit_all(wt, "local only")  # then the process dies

    retry = await workspace.checkout(
        REPO, remote, issue_number=7, name="deliver", base_branch="main", branch=BRANCH
    )

    assert retry.start_sha == pushed
    assert (retry.path / "PUSHED.md").exists()
    assert not (retry.path / "LOCAL.md").exists()


async def test_checkout__keep_reuses_a_healthy_worktree_with_its_edits(
    workspace: Workspace, remote: str
) -> None:
    path = await _deliver_checkout(workspace, remote)
    (path / "EDIT.md").write_text("uncommitted\n")

    kept = await _deliver_checkout(workspace, remote, keep=True)
    assert (kept / "EDIT.md").read_text() == "uncommitted\n"

    fresh = await _deliver_checkout(workspace, remote, keep=False)
    assert not (fresh / "EDIT.md").exists()


async def test_checkout__debris_of_a_dead_process_is_cleaned_up(
    workspace: Workspace, remote: str
) -> None:
    """Windows: killed mid-clone, mid-fetch (a ref lock left), and after its worktree vanished."""
    clone = workspace.clone_path(REPO)
    clone.mkdir(parents=True)
    (clone / "garbage").write_text("half a clone\n")  # no HEAD: a clone that never finished
    path = await _deliver_checkout(workspace, remote)
    assert (path / "README.md").exists()

    lock = clone / "refs" / "remotes" / "origin" / "main.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")  # a fetch killed while updating the ref
    await push_commit(remote, "main", {"MORE.md": "more\n"}, "more")

    await asyncio.to_thread(_rmtree, path)  # the worktree directory is gone, still registered
    again = await _deliver_checkout(workspace, remote, keep=True)
    assert (again / "MORE.md").exists()

    (again / "junk").write_text("x")
    await Git().run("worktree", "prune", cwd=clone)  # registration gone, directory left
    await asyncio.to_thread((again / ".git").unlink)
    third = await _deliver_checkout(workspace, remote, keep=True)
    assert not (third / "junk").exists()
    assert (third / "MORE.md").exists()


async def test_release__removes_the_worktree_and_its_local_branch(
    workspace: Workspace, remote: str
) -> None:
    deliver = await workspace.checkout(
        REPO, remote, issue_number=7, name="deliver", base_branch="main", branch=BRANCH
    )
    plan = await workspace.checkout(REPO, remote, issue_number=7, name="plan", base_branch="main")
    clone = workspace.clone_path(REPO)

    assert await workspace.release(deliver) is True

    assert not deliver.path.exists()
    assert (await Git().run("branch", "--list", BRANCH, cwd=clone)).strip() == ""
    assert plan.path.is_dir()  # another phase's worktree is not touched
    assert await workspace.release(deliver) is False  # already gone

    assert await workspace.release(plan) is True
    assert not workspace.task_dir(REPO, 7).exists()
    assert "plan" not in await Git().run("worktree", "list", cwd=clone)


async def test_release__leaves_a_worktree_another_checkout_took_over(
    workspace: Workspace, remote: str
) -> None:
    first = await workspace.checkout(
        REPO, remote, issue_number=7, name="deliver", base_branch="main", branch=BRANCH
    )
    resumed = await workspace.checkout(
        REPO, remote, issue_number=7, name="deliver", base_branch="main", branch=BRANCH, keep=True
    )
    assert resumed.path == first.path

    assert await workspace.release(first) is False  # the resumed run works in it now
    assert (resumed.path / "README.md").exists()
    branches = await Git().run("branch", "--list", BRANCH, cwd=workspace.clone_path(REPO))
    assert branches.strip() != ""

    recreated = await workspace.checkout(
        REPO, remote, issue_number=7, name="deliver", base_branch="main", branch=BRANCH
    )
    assert await workspace.release(resumed) is False
    assert await workspace.release(recreated) is True
    assert not workspace.task_dir(REPO, 7).exists()


async def test_checkout__concurrent_tasks_on_one_repository(
    workspace: Workspace, remote: str
) -> None:
    trees = await asyncio.gather(
        *(
            workspace.checkout(
                REPO,
                remote,
                issue_number=n,
                name="deliver",
                base_branch="main",
                branch=f"agent/issue-{n}",
            )
            for n in range(1, 6)
        )
    )
    assert len({t.path for t in trees}) == 5
    assert all((t.path / "README.md").exists() for t in trees)


async def test_checkout__an_unknown_base_branch_is_an_error(
    workspace: Workspace, remote: str
) -> None:
    with pytest.raises(GitError, match="no branch 'trunk'"):
        await workspace.checkout(REPO, remote, issue_number=7, name="plan", base_branch="trunk")


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)
