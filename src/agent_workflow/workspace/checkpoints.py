"""Checkpoints: an agent's uncommitted work, kept on the remote while the phase runs.

A worker that dies mid-phase leaves its edits in its own worktree, on its own disk. So
after each agent turn that changed files, the worktree's whole state (tracked and
untracked files, `.gitignore` respected) becomes a private commit, force-pushed to

    refs/agent-workflow/checkpoints/<issue number>-<task id>/<phase>/<attempt>

(never a branch: no pull request, no CI, nothing a reviewer sees). Its parent is the
commit the worktree was checked out at (its base), whatever the agent committed
meanwhile, so the checkpoint is "this base plus these files". The commit is built over
a temporary index: the agent's own index, HEAD and files are not touched.

A takeover (a resumed attempt, or a later attempt) fetches the phase's checkpoints
(any attempt) before the agent starts and, in a fresh, clean worktree whose base is
the newest checkpoint's parent, lays that checkpoint's files out as uncommitted
changes: the resumed session finds the files it wrote. A checkpoint on another base
(the branch moved since) is ignored. Once the phase settles (pushed, or blocked) its
checkpoints are deleted; a leftover (a worker killed in between) is harmless: a later
takeover of the same phase only uses one on its own base.

Every push and delete checks the lease first (G5), like any other mutation. Git runs
with `Git`'s fences (no hooks, no planted config); refs are built from integers and
the phase name only. The issue number beside the task id keeps another deployment's (or
a reset database's) task of the same id from finding this one's work on a shared remote.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from agent_workflow.core.lease import assert_lease_held
from agent_workflow.workspace.git import GitError
from agent_workflow.workspace.workspace import WORKFLOWS_DIR, Workspace, Worktree

# Where checkpoints live on the remote, and the clone's copy of them when fetched.
REMOTE_ROOT = "refs/agent-workflow/checkpoints"
LOCAL_ROOT = "refs/aw-checkpoints"


@dataclass(frozen=True)
class Owner:
    """Whose checkpoints: a task, named with its issue (task ids are one database's)."""

    task_id: int
    issue_number: int

    @property
    def segment(self) -> str:
        """The ref path segment: integers only."""
        return f"{int(self.issue_number)}-{int(self.task_id)}"


def phase_prefix(owner: Owner, phase: str) -> str:
    """The remote's ref prefix of one task phase's checkpoints (every attempt)."""
    return f"{REMOTE_ROOT}/{owner.segment}/{_safe(phase)}"


def checkpoint_ref(owner: Owner, phase: str, attempt: int) -> str:
    """The remote ref of one attempt's checkpoint."""
    return f"{phase_prefix(owner, phase)}/{int(attempt)}"


def _safe(phase: str) -> str:
    if not phase.isalpha():
        raise ValueError(f"not a phase name: {phase[:40]!r}")
    return phase


@dataclass
class Checkpointer:
    """Saves one attempt's worktree state to its checkpoint ref, when it changed."""

    workspace: Workspace
    worktree: Worktree
    owner: Owner
    phase: str
    attempt: int
    _saved_tree: str | None = field(default=None, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    @property
    def ref(self) -> str:
        """This attempt's checkpoint ref on the remote."""
        return checkpoint_ref(self.owner, self.phase, self.attempt)

    async def save(self) -> str | None:
        """Checkpoint the worktree if its files differ from the last checkpoint (or, for the
        first one, from its base); returns the pushed commit, None when nothing changed.
        Raises `LeaseLost` (nothing pushed) when the lease may be gone."""
        async with self._lock:  # two hooks at once would push in either order
            tree = await snapshot_tree(self.workspace, self.worktree)
            last = self._saved_tree or await _tree_of(
                self.workspace, self.worktree, self.worktree.start_sha
            )
            if tree == last:
                return None
            commit = await self._commit(tree)
            assert_lease_held()  # a push is a mutation (G5)
            await self.workspace.push_refspecs(
                self.worktree.repo, self.worktree.url, [f"+{commit}:{self.ref}"]
            )
            self._saved_tree = tree
            return commit

    async def _commit(self, tree: str) -> str:
        owner = self.owner
        message = (
            f"agent-workflow checkpoint: task {owner.task_id} (issue #{owner.issue_number})"
            f" {self.phase} {self.attempt}"
        )
        out = await self.workspace.git.run(
            "commit-tree",
            tree,
            "-p",
            self.worktree.start_sha,
            "-m",
            message,
            cwd=self.worktree.path,
            env={**self.workspace.worktree_env(self.worktree), **self.workspace.author.env()},
        )
        return out.strip()


async def snapshot_tree(workspace: Workspace, worktree: Worktree) -> str:
    """The tree of the worktree's files as they are now, written over a temporary index
    (a copy of the worktree's, so unchanged files are not hashed again)."""
    env = workspace.worktree_env(worktree)
    admin = worktree.admin or worktree.path / ".git"
    index = admin / f"aw-checkpoint-index-{uuid.uuid4().hex[:8]}"
    try:
        await asyncio.to_thread(_copy_if_exists, admin / "index", index)
        indexed = {**env, "GIT_INDEX_FILE": str(index)}
        if not await asyncio.to_thread(index.exists):
            await workspace.git.run("read-tree", "HEAD", cwd=worktree.path, env=indexed)
        await workspace.git.run("add", "--all", cwd=worktree.path, env=indexed)
        if not workspace.allow_workflow_changes:
            # As the branch push refuses them: a workflow edit never leaves the machine
            # (an App without the workflows permission would have each save refused).
            base = worktree.start_sha
            await workspace.git.run(
                "reset", "-q", base, "--", WORKFLOWS_DIR, cwd=worktree.path, env=indexed
            )
        return (await workspace.git.run("write-tree", cwd=worktree.path, env=indexed)).strip()
    finally:
        await asyncio.to_thread(index.unlink, True)


async def fetched(
    workspace: Workspace, worktree: Worktree, owner: Owner, phase: str
) -> list[tuple[int, int, str]]:
    """The remote's checkpoints of the task phase as (commit time, attempt, sha), newest
    first; fetched into the clone (`LOCAL_ROOT`, pruned to what the remote has)."""
    prefix = phase_prefix(owner, phase)
    local = _local_prefix(owner, phase)
    await workspace.fetch_refspecs(worktree.repo, worktree.url, [f"+{prefix}/*:{local}/*"])
    listed = await workspace.git.run(
        "for-each-ref",
        "--format=%(committerdate:unix) %(objectname) %(refname)",
        f"{local}/",
        cwd=workspace.clone_path(worktree.repo),
    )
    return sorted((_newest_key(line) for line in listed.splitlines() if line.strip()), reverse=True)


async def restore_newest(
    workspace: Workspace, worktree: Worktree, owner: Owner, phase: str
) -> str | None:
    """Lay the newest checkpoint of the task phase on its base out in `worktree` as
    uncommitted changes; returns its commit, None when there is none to use.

    Only a clean worktree still at its base is restored into: one kept from an earlier
    run on this machine has its own (newer) files.
    """
    candidates = await fetched(workspace, worktree, owner, phase)
    if not candidates:
        return None
    env = workspace.worktree_env(worktree)
    head = (await workspace.git.run("rev-parse", "HEAD", cwd=worktree.path, env=env)).strip()
    if head != worktree.start_sha or await workspace.changed_paths(worktree):
        return None
    clone = workspace.clone_path(worktree.repo)
    for _, _, sha in candidates:
        parent = await workspace.git.run(
            "rev-parse", "--verify", "--quiet", f"{sha}^1", cwd=clone, check=False
        )
        if parent.strip() != head:
            continue  # made on another base: the branch moved since
        await workspace.git.run("read-tree", "--reset", "-u", sha, cwd=worktree.path, env=env)
        await workspace.git.run("reset", "--quiet", cwd=worktree.path, env=env)
        return sha
    return None


async def delete_all(workspace: Workspace, worktree: Worktree, owner: Owner, phase: str) -> int:
    """Delete every checkpoint of the task phase on the remote (and the clone's copies);
    returns how many went. Checks the lease first (a push is a mutation)."""
    prefix = phase_prefix(owner, phase)
    attempts = sorted(
        {attempt for _, attempt, _ in await fetched(workspace, worktree, owner, phase)}
    )
    if not attempts:
        return 0
    assert_lease_held()
    await workspace.push_refspecs(
        worktree.repo, worktree.url, [f":{prefix}/{attempt}" for attempt in attempts]
    )
    clone = workspace.clone_path(worktree.repo)
    for attempt in attempts:
        with contextlib.suppress(GitError):
            await workspace.git.run(
                "update-ref", "-d", f"{_local_prefix(owner, phase)}/{attempt}", cwd=clone
            )
    return len(attempts)


def _local_prefix(owner: Owner, phase: str) -> str:
    return f"{LOCAL_ROOT}/{owner.segment}/{_safe(phase)}"


async def _tree_of(workspace: Workspace, worktree: Worktree, commit: str) -> str:
    out = await workspace.git.run(
        "rev-parse", f"{commit}^{{tree}}", cwd=worktree.path, env=workspace.worktree_env(worktree)
    )
    return out.strip()


def _newest_key(line: str) -> tuple[int, int, str]:
    """(commit time, attempt, sha) of a `for-each-ref` line: newest first when sorted down."""
    when, sha, ref = line.split(" ", 2)
    attempt = ref.rsplit("/", 1)[-1]
    return int(when or "0"), int(attempt) if attempt.isdigit() else 0, sha


def _copy_if_exists(source: Path, target: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        shutil.copyfile(source, target)
