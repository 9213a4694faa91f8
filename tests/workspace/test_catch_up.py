"""The base moved (issue 11, item 4): before a push the branch is brought up to date with
the base — rebased when never pushed, merged when it was — and a conflict changes nothing
and names the files."""

from __future__ import annotations

from pathlib import Path

from agent_workflow.workspace import Workspace, Worktree
from tests.support.git_seed import push_commit, remote_log
from tests.workspace.conftest import REPO


async def _branch(ws: Workspace, remote: str) -> Worktree:
    return await ws.checkout(
        REPO, remote, issue_number=7, name="deliver", base_branch="main", branch="agent/issue-7"
    )


async def _commit(ws: Workspace, wt: Worktree, name: str, text: str) -> None:
    (wt.path / name).write_text(text)
    await ws.commit_all(wt, f"change {name}")


async def _contains(ws: Workspace, wt: Worktree, sha: str) -> bool:
    code, _, _ = await ws.git.run_full(
        "merge-base", "--is-ancestor", sha, "HEAD", cwd=wt.path, env=_env(wt)
    )
    return code == 0


def _env(wt: Worktree) -> dict[str, str]:
    return {"GIT_DIR": str(wt.admin), "GIT_WORK_TREE": str(wt.path)} if wt.admin else {}


async def test_base_unchanged__nothing_to_do(workspace: Workspace, remote: str) -> None:
    wt = await _branch(workspace, remote)
    await _commit(workspace, wt, "NEW.md", "new\n")
    caught = await workspace.catch_up(wt)
    assert (caught.moved, caught.conflicts) == (False, ())


async def test_base_moved__a_branch_never_pushed_is_rebased(
    workspace: Workspace, remote: str
) -> None:
    wt = await _branch(workspace, remote)
    await _commit(workspace, wt, "NEW.md", "new\n")
    moved = await push_commit(remote, "main", {"OTHER.md": "other\n"}, "someone else's work")

    caught = await workspace.catch_up(wt)

    assert (caught.moved, caught.how, caught.conflicts) == (True, "rebase", ())
    assert await _contains(workspace, wt, moved)
    await workspace.push(wt)
    log = await remote_log(remote, "agent/issue-7")
    assert [line.split("|")[1] for line in log[:2]] == ["change NEW.md", "someone else's work"]


async def test_base_moved__a_pushed_branch_gets_a_merge_never_a_rewrite(
    workspace: Workspace, remote: str
) -> None:
    wt = await _branch(workspace, remote)
    await _commit(workspace, wt, "NEW.md", "new\n")
    pushed = await workspace.push(wt)
    moved = await push_commit(remote, "main", {"OTHER.md": "other\n"}, "someone else's work")

    caught = await workspace.catch_up(wt)

    assert (caught.how, caught.conflicts) == ("merge", ())
    assert await _contains(workspace, wt, moved)
    assert await _contains(workspace, wt, pushed)  # what was pushed stays: fast-forward
    await workspace.push(wt)


async def test_conflict__nothing_changes_and_the_files_are_named(
    workspace: Workspace, remote: str
) -> None:
    wt = await _branch(workspace, remote)
    await _commit(workspace, wt, "README.md", "ours\n")
    before = await workspace.head(wt)
    await push_commit(remote, "main", {"README.md": "theirs\n"}, "a conflicting change")

    caught = await workspace.catch_up(wt)

    assert caught.conflicts == ("README.md",)
    assert await workspace.head(wt) == before
    assert (wt.path / "README.md").read_text() == "ours\n"
    status = await workspace.git.run("status", "--porcelain", cwd=wt.path, env=_env(wt))
    assert status.strip() == ""  # no rebase or merge left half-done
    assert not Path(str(wt.admin), "rebase-merge").exists()  # noqa: ASYNC240
