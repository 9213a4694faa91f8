"""Checkpoints on real git repositories: an attempt's uncommitted work is saved to a hidden
ref on the remote, a worktree on another machine starts from it, a settled phase drops it."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_workflow.core.errors import LeaseLost
from agent_workflow.core.lease import LeaseWatch, watching
from agent_workflow.workspace import Workspace
from agent_workflow.workspace.checkpoints import (
    Checkpointer,
    Owner,
    checkpoint_ref,
    delete_all,
    restore_newest,
)
from agent_workflow.workspace.git import Git
from agent_workflow.workspace.workspace import Worktree
from tests.support.git_seed import push_commit
from tests.workspace.conftest import REPO

BRANCH = "agent/issue-7"
TASK = Owner(task_id=42, issue_number=7)


async def _checkout(ws: Workspace, remote: str) -> Worktree:
    return await ws.checkout(
        REPO, remote, issue_number=7, name="deliver", base_branch="main", branch=BRANCH
    )


async def _remote_refs(remote: str) -> dict[str, str]:
    out = await Git().run(
        "for-each-ref", "--format=%(refname) %(objectname)", "refs/", cwd=Path(remote)
    )
    pairs = (line.split(" ", 1) for line in out.splitlines())
    return {name: sha for name, sha in pairs}


async def _status(ws: Workspace, wt: Worktree) -> str:
    return await ws.git.run(
        "status", "--porcelain", "--untracked-files=all", cwd=wt.path, env=ws.worktree_env(wt)
    )


def _edit(path: Path) -> None:
    """What an agent's turn leaves: a new file, a changed one, a deleted one."""
    (path / "src").mkdir()
    (path / "src" / "new.py").write_text("def perimeter(w, h):\n    return 2 * (w + h)\n")
    (path / "README.md").write_text("hello, changed\n")
    (path / "DELETE.md").unlink()


@pytest.fixture
async def seeded(remote: str) -> str:
    await push_commit(remote, "main", {"DELETE.md": "old\n"}, "a file the agent deletes")
    return remote


async def test_save__a_private_commit_on_the_hidden_ref_the_agents_state_untouched(
    workspace: Workspace, seeded: str
) -> None:
    wt = await _checkout(workspace, seeded)
    saver = Checkpointer(workspace, wt, TASK, "deliver", 1)
    assert await saver.save() is None  # nothing changed yet: nothing pushed
    _edit(wt.path)
    (wt.path / "staged.txt").write_text("staged\n")
    await workspace.git.run("add", "staged.txt", cwd=wt.path, env=workspace.worktree_env(wt))
    before = await _status(workspace, wt)

    commit = await saver.save()

    assert commit is not None
    refs = await _remote_refs(seeded)
    assert refs[checkpoint_ref(TASK, "deliver", 1)] == commit
    assert not any(r.startswith("refs/heads/agent") for r in refs)  # no branch was pushed
    assert await _status(workspace, wt) == before  # index and files as the agent left them
    assert await workspace.head(wt) == wt.start_sha
    git = Git()
    parent = await git.run("rev-parse", f"{commit}^1", cwd=Path(seeded))
    assert parent.strip() == wt.start_sha
    files = await git.run("ls-tree", "-r", "--name-only", commit, cwd=Path(seeded))
    assert sorted(files.split()) == ["README.md", "src/new.py", "staged.txt"]
    assert await saver.save() is None  # unchanged since: nothing pushed again
    (wt.path / "more.txt").write_text("more\n")
    newer = await saver.save()
    assert newer not in (None, commit)
    assert (await _remote_refs(seeded))[saver.ref] == newer


async def test_restore__another_machine_starts_from_the_newest_checkpoint(
    tmp_path: Path, workspace: Workspace, seeded: str
) -> None:
    wt = await _checkout(workspace, seeded)
    first = Checkpointer(workspace, wt, TASK, "deliver", 1)
    (wt.path / "early.txt").write_text("attempt 1\n")
    assert await first.save() is not None
    _edit(wt.path)
    (wt.path / "early.txt").unlink()
    second = Checkpointer(workspace, wt, TASK, "deliver", 2)  # a later attempt, newer
    newest = await second.save()

    machine_b = Workspace(tmp_path / "machine-b")  # its own clone and worktrees
    fresh = await _checkout(machine_b, seeded)
    restored = await restore_newest(machine_b, fresh, TASK, "deliver")

    assert restored == newest
    assert (fresh.path / "src" / "new.py").read_text().startswith("def perimeter")
    assert (fresh.path / "README.md").read_text() == "hello, changed\n"
    assert not (fresh.path / "DELETE.md").exists()
    assert not (fresh.path / "early.txt").exists()
    assert await machine_b.head(fresh) == fresh.start_sha  # uncommitted, on the branch's base
    assert sorted(await machine_b.changed_paths(fresh)) == ["DELETE.md", "README.md", "src/new.py"]
    staged = await machine_b.git.run(
        "diff", "--cached", "--name-only", cwd=fresh.path, env=machine_b.worktree_env(fresh)
    )
    assert staged == ""  # as an agent leaves its work: in the files, not in the index


async def test_restore__nothing_without_checkpoints_on_another_base_or_in_a_kept_worktree(
    tmp_path: Path, workspace: Workspace, seeded: str
) -> None:
    wt = await _checkout(workspace, seeded)
    machine_b = Workspace(tmp_path / "machine-b")
    assert (
        await restore_newest(machine_b, await _checkout(machine_b, seeded), TASK, "deliver") is None
    )

    _edit(wt.path)
    await Checkpointer(workspace, wt, TASK, "deliver", 1).save()
    dirty = await _checkout(machine_b, seeded)
    (dirty.path / "own.txt").write_text("this machine's newer work\n")
    assert await restore_newest(machine_b, dirty, TASK, "deliver") is None  # kept as it is
    assert not (dirty.path / "src").exists()

    await push_commit(seeded, "main", {"moved.txt": "x\n"}, "the base moved")
    machine_c = Workspace(tmp_path / "machine-c")
    moved = await _checkout(machine_c, seeded)
    assert await restore_newest(machine_c, moved, TASK, "deliver") is None  # another base
    assert (moved.path / "DELETE.md").exists()


async def test_delete_all__every_attempt_of_the_phase_goes_other_phases_stay(
    workspace: Workspace, seeded: str
) -> None:
    wt = await _checkout(workspace, seeded)
    _edit(wt.path)
    for attempt in (1, 2):
        await Checkpointer(workspace, wt, TASK, "deliver", attempt).save()
    await Checkpointer(workspace, wt, TASK, "revise", 1).save()

    assert await delete_all(workspace, wt, TASK, "deliver") == 2

    refs = await _remote_refs(seeded)
    assert [r for r in refs if r.startswith("refs/agent-workflow/")] == [
        checkpoint_ref(TASK, "revise", 1)
    ]
    assert await delete_all(workspace, wt, TASK, "deliver") == 0  # tolerated: already gone


async def test_save__a_lost_lease_pushes_nothing(workspace: Workspace, seeded: str) -> None:
    wt = await _checkout(workspace, seeded)
    _edit(wt.path)
    expired = LeaseWatch(confirmed_until=10.0, clock=lambda: 100.0, margin_s=0.0)
    with watching(expired), pytest.raises(LeaseLost):
        await Checkpointer(workspace, wt, TASK, "deliver", 1).save()
    assert not [r for r in await _remote_refs(seeded) if r.startswith("refs/agent-workflow/")]


async def test_restore__another_tasks_checkpoints_of_the_same_id_are_not_seen(
    tmp_path: Path, workspace: Workspace, seeded: str
) -> None:
    """A task of the same id for another issue (another deployment, or a database reset,
    on a shared remote) finds none of this one's work."""
    wt = await _checkout(workspace, seeded)
    (wt.path / "mine.txt").write_text("mine\n")
    await Checkpointer(workspace, wt, TASK, "deliver", 1).save()
    stranger = Owner(task_id=TASK.task_id, issue_number=TASK.issue_number + 1)
    machine_b = Workspace(tmp_path / "machine-b")
    fresh = await _checkout(machine_b, seeded)
    assert await restore_newest(machine_b, fresh, stranger, "deliver") is None
    assert not (fresh.path / "mine.txt").exists()


async def test_save__a_workflow_edit_never_leaves_the_machine(
    workspace: Workspace, seeded: str
) -> None:
    """As the branch push refuses them (unless `allow_workflow_changes`)."""
    wt = await _checkout(workspace, seeded)
    (wt.path / ".github" / "workflows").mkdir(parents=True)
    (wt.path / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    (wt.path / "ok.txt").write_text("ok\n")

    commit = await Checkpointer(workspace, wt, TASK, "deliver", 1).save()

    assert commit is not None
    files = await Git().run("ls-tree", "-r", "--name-only", commit, cwd=Path(seeded))
    assert ".github/workflows/ci.yml" not in files.split()
    assert "ok.txt" in files.split()
    assert (wt.path / ".github" / "workflows" / "ci.yml").exists()  # the agent's file stays
