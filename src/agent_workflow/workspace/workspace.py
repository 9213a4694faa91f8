"""Cached clones and per-task worktrees on deterministic branches.

Layout under `root`::

    repos/<owner>__<name>.git                      one bare clone per repository
    repos/<owner>__<name>.git.lock                 its lock (see `locks`)
    worktrees/<owner>__<name>/issue-<N>/<name>     one worktree per task and phase

A checkout always fetches first, so deliver starts from what the remote has
now. A branch checkout starts from the remote branch when it exists (a retry
continues from the work already pushed), otherwise from the base branch.
Whatever a dead process left behind (a half-made clone, a stale worktree
registration, a directory git no longer knows, a local branch) is cleaned up
and recreated, except that `keep=True` reuses a healthy worktree on the right
branch: a resumed agent session expects to find its earlier edits there.

Each checkout stamps its worktree with a fresh owner token (kept in the
worktree's administrative directory inside the clone, never in the checkout).
`release` removes a worktree only while the token is still the caller's: once
another checkout has taken the path over (recreated it, or reused it for a
resumed session), the old holder's release leaves it alone.

The agent is an attacker of the worker's git (see README, "Security model"): it
can write the shared clone's config from its worktree and rewrite its worktree's
`.git` file. So every command runs with `Git`'s safe settings (no hooks, no
fsmonitor, no helpers, no global or system config); the clone's config is
rewritten from scratch before each checkout and push; fetch and push name the
clone URL and refspec themselves (never `origin`'s planted settings) with only
the protocols that URL needs; commands on a worktree name its administrative
directory (`GIT_DIR`) as recorded at checkout instead of trusting its `.git`
file; the push alone gets the token, as an `http.extraheader` in its environment
(never in a URL, a file, or any other command's environment).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent_workflow.core.model import BRANCH_PREFIX
from agent_workflow.core.ports import PushTokens
from agent_workflow.workspace.git import Git, GitError, transport_env
from agent_workflow.workspace.locks import RepoLocks

REMOTE = "origin"

# The owner token's file in a worktree's administrative directory (`<clone>/worktrees/<id>/`).
_OWNER_FILE = "aw-owner"

# What the clone's fetch maps the remote's branches to.
_FETCH_REFSPEC = f"+refs/heads/*:refs/remotes/{REMOTE}/*"

# Paths a push leaves out unless allowed (`Workspace.allow_workflow_changes`).
WORKFLOWS_DIR = ".github/workflows/"


class WorkflowChangesRefused(GitError):
    """The branch changes CI workflows, which it may not push (the paths are in `paths`)."""

    def __init__(self, paths: list[str]) -> None:
        """Name the refused paths."""
        self.paths = paths
        super().__init__(
            ("push",),
            1,
            "changes under .github/workflows/ are not pushed "
            f"(AW_ALLOW_WORKFLOW_CHANGES is off): {', '.join(paths)}",
        )


@dataclass(frozen=True)
class GitAuthor:
    """Author and committer of the commits the workspace makes for the agent."""

    name: str = "agent-workflow[bot]"
    email: str = "agent-workflow[bot]@users.noreply.github.com"

    def env(self) -> dict[str, str]:
        """The git environment variables that set author and committer."""
        return {
            "GIT_AUTHOR_NAME": self.name,
            "GIT_AUTHOR_EMAIL": self.email,
            "GIT_COMMITTER_NAME": self.name,
            "GIT_COMMITTER_EMAIL": self.email,
        }


@dataclass(frozen=True)
class Worktree:
    """A checkout for one task phase."""

    repo: str
    path: Path
    branch: str | None  # None: a detached, read-only checkout
    base_branch: str  # the remote branch it is measured against (the repo's default)
    start_sha: str  # the commit it was created from
    owner: str = ""  # the token of the checkout that gave it (see `Workspace.release`)
    url: str = ""  # the remote it was fetched from and is pushed to
    admin: Path | None = None  # its administrative directory in the clone (its GIT_DIR)


@dataclass(frozen=True)
class TaskDir:
    """The directory of one task's worktrees, as found on disk (`Workspace.task_dirs`)."""

    repo_dir: str  # `repo_dirname` of the task's repository
    issue_number: int
    path: Path
    touched_at: float  # epoch seconds of the newest checkout in it (or of the directory)


def repo_dirname(repo: str) -> str:
    """`owner/name` as one safe directory name (`owner__name`)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", repo.replace("/", "__"))


@dataclass
class Workspace:
    """Clones, worktrees, commits and pushes for agent runs, under one root directory."""

    root: Path
    author: GitAuthor = field(default_factory=GitAuthor)
    git: Git = field(default_factory=Git)
    # Where the push's credential comes from (a GitHub App's token narrowed to the
    # repository and `contents: write`, or the fixed token); None pushes without one.
    # Asked for at each push, never stored.
    push_tokens: PushTokens | None = field(default=None, repr=False)
    # False is the safe value; the deployment's choice is `Settings.allow_workflow_changes`.
    allow_workflow_changes: bool = False
    _locks: RepoLocks = field(default_factory=RepoLocks, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    # -- paths -------------------------------------------------------------------

    def clone_path(self, repo: str) -> Path:
        """Where the bare clone of `repo` lives."""
        return self.root / "repos" / f"{repo_dirname(repo)}.git"

    def task_dir(self, repo: str, issue_number: int) -> Path:
        """The directory holding every worktree of one task."""
        return self.root / "worktrees" / repo_dirname(repo) / f"issue-{issue_number}"

    # -- clone -------------------------------------------------------------------

    async def _ensure_clone(self, clone: Path, clone_url: str) -> None:
        if (clone / "HEAD").exists():
            await self._reset_config(clone, clone_url)
            return
        # Build it aside and rename, so a crash never leaves a half-made clone in place.
        tmp = clone.with_name(f"{clone.name}.tmp-{uuid.uuid4().hex[:8]}")
        await self.git.run("init", "--quiet", "--bare", str(tmp))
        await self._reset_config(tmp, clone_url)
        # A directory without HEAD is debris of a dead process.
        await asyncio.to_thread(shutil.rmtree, clone, True)
        tmp.rename(clone)

    async def _reset_config(self, clone: Path, clone_url: str) -> None:
        """Replace the clone's config with the few settings the worker wrote itself.

        Anything else there (`url.*.insteadOf`, filters, `include.path`, a
        `remote.origin.pushurl`, ...) was planted from a worktree. Written aside and
        renamed over, so git never reads half of it.
        """
        tmp = clone / f"config.aw-{uuid.uuid4().hex[:8]}"
        for key, value in (
            ("core.repositoryformatversion", "0"),
            ("core.bare", "true"),
            (f"remote.{REMOTE}.url", clone_url),
            (f"remote.{REMOTE}.fetch", _FETCH_REFSPEC),
        ):
            await self.git.run("config", "--file", str(tmp), key, value)
        await asyncio.to_thread(os.replace, tmp, clone / "config")

    async def _fetch(self, clone: Path, clone_url: str) -> None:
        await self._run_recovering(
            clone,
            "fetch",
            "--quiet",
            "--prune",
            "--no-recurse-submodules",
            clone_url,
            _FETCH_REFSPEC,
            env=transport_env(clone_url),
        )

    async def _run_recovering(
        self, clone: Path, *args: str, env: dict[str, str] | None = None
    ) -> None:
        """Run git in the clone; if a stale lock file stops it, remove the locks and retry once.

        Called with the clone's lock held, so a lock file is most likely a
        killed git's leftover (a live one would be an agent's own git command
        in its worktree, which then fails once and is retried by the agent).
        """
        try:
            await self.git.run(*args, cwd=clone, env=env)
        except GitError as exc:
            if ".lock" not in exc.stderr:
                raise
            await asyncio.to_thread(_remove_lock_files, clone)
            await self.git.run(*args, cwd=clone, env=env)

    async def remote_sha(self, clone: Path, branch: str) -> str | None:
        """The fetched head of `branch` on the remote, or None when it has no such branch."""
        code, out, _ = await self.git.run_full(
            "rev-parse",
            "--verify",
            "--quiet",
            f"refs/remotes/{REMOTE}/{branch}^{{commit}}",
            cwd=clone,
        )
        return out.strip() if code == 0 else None

    # -- worktrees -----------------------------------------------------------------

    async def checkout(
        self,
        repo: str,
        clone_url: str,
        *,
        issue_number: int,
        name: str,
        base_branch: str,
        branch: str | None = None,
        keep: bool = False,
    ) -> Worktree:
        """Fetch, then give a worktree `<task_dir>/<name>`.

        With `branch`, the worktree is on that branch, starting from the remote
        branch if it exists, else from `base_branch`. Without, it is detached at
        the remote `base_branch` (for read-only work). `keep` reuses an existing
        healthy worktree on the same branch instead of recreating it.
        """
        clone = self.clone_path(repo)
        path = self.task_dir(repo, issue_number) / name
        async with self._locks.hold(clone):
            await self._ensure_clone(clone, clone_url)
            await self._fetch(clone, clone_url)
            base_sha = await self.remote_sha(clone, base_branch)
            if base_sha is None:
                raise GitError(("checkout",), 1, f"remote has no branch {base_branch!r}")
            if branch and keep and await self._on_branch(clone, path, branch):
                owner, admin = await self._stamp(clone, path)
                start = await self.git.run("rev-parse", "HEAD", cwd=path, env=_on(path, admin))
                return Worktree(
                    repo, path, branch, base_branch, start.strip(), owner, clone_url, admin
                )
            await self._discard(clone, path)
            path.parent.mkdir(parents=True, exist_ok=True)
            if branch is None:
                await self.git.run(
                    "worktree", "add", "--quiet", "--detach", str(path), base_sha, cwd=clone
                )
                owner, admin = await self._stamp(clone, path)
                return Worktree(repo, path, None, base_branch, base_sha, owner, clone_url, admin)
            start_sha = await self.remote_sha(clone, branch) or base_sha
            await self.git.run(
                "worktree",
                "add",
                "--quiet",
                "--no-track",
                "-B",
                branch,
                str(path),
                start_sha,
                cwd=clone,
            )
            owner, admin = await self._stamp(clone, path)
            return Worktree(repo, path, branch, base_branch, start_sha, owner, clone_url, admin)

    async def _on_branch(self, clone: Path, path: Path, branch: str) -> bool:
        admin = await asyncio.to_thread(_admin_dir, path)
        if admin is None or admin.resolve().parent != (clone / "worktrees").resolve():
            return False  # not ours (gone, or its `.git` file now points elsewhere)
        code, out, _ = await self.git.run_full(
            "symbolic-ref", "--quiet", "--short", "HEAD", cwd=path, env=_on(path, admin)
        )
        return code == 0 and out.strip() == branch

    async def _discard(self, clone: Path, path: Path) -> None:
        await self.git.run_full("worktree", "remove", "--force", "--force", str(path), cwd=clone)
        await asyncio.to_thread(shutil.rmtree, path, True)
        await self.git.run("worktree", "prune", cwd=clone)

    async def release(self, worktree: Worktree) -> bool:
        """Remove a worktree whose phase attempt is over, and its local branch.

        Call it only once the branch's work is pushed (or there is none): the
        remote is untouched, the clone's copy of the branch is deleted (git
        refuses while another worktree has it checked out). Does nothing and
        returns False when the worktree is no longer this checkout's (another
        checkout has taken its path over, or it is gone); True when removed.
        """
        clone = self.clone_path(worktree.repo)
        async with self._locks.hold(clone):
            if not worktree.owner or await self._owner(worktree.path) != worktree.owner:
                return False
            await self._discard(clone, worktree.path)
            if worktree.branch:
                await self.git.run_full("branch", "-D", worktree.branch, cwd=clone)
            await asyncio.to_thread(
                _remove_empty_dirs, worktree.path.parent, self.root / "worktrees"
            )
            return True

    # -- janitor -------------------------------------------------------------------

    async def task_dirs(self) -> list[TaskDir]:
        """Every task directory under `worktrees/`, whatever state its worktrees are in."""
        return await asyncio.to_thread(_task_dirs, self.root / "worktrees")

    async def remove_task_dir(
        self, task_dir: TaskDir, in_use: Callable[[], Awaitable[bool]]
    ) -> bool:
        """Remove a task's worktrees and its local task branches, unless `in_use()` says no.

        `in_use` is asked with the clone's lock held: a checkout takes that lock after its
        phase is claimed, so either the claim is visible to `in_use` or the checkout waits
        and then builds its worktree afresh. The remote is never touched. True when removed.
        """
        clone = self.root / "repos" / f"{task_dir.repo_dir}.git"
        async with self._locks.hold(clone):
            if await in_use():
                return False
            has_clone = await asyncio.to_thread((clone / "HEAD").exists)
            for child in await asyncio.to_thread(_children, task_dir.path):
                if has_clone:
                    await self._discard(clone, child)
            await asyncio.to_thread(shutil.rmtree, task_dir.path, True)
            if has_clone:
                for branch in await self._task_branches(clone, task_dir.issue_number):
                    await self.git.run_full("branch", "-D", branch, cwd=clone)
            await asyncio.to_thread(
                _remove_empty_dirs, task_dir.path.parent, self.root / "worktrees"
            )
            return True

    async def _task_branches(self, clone: Path, issue_number: int) -> list[str]:
        """The clone's local branches of one task: `agent/issue-N` and `agent/issue-N-*`."""
        out = await self.git.run(
            "for-each-ref", "--format=%(refname:short)", "refs/heads/", cwd=clone
        )
        own = f"{BRANCH_PREFIX}{issue_number}"
        return [b for b in out.split() if b == own or b.startswith(f"{own}-")]

    async def _stamp(self, clone: Path, path: Path) -> tuple[str, Path]:
        """Give the worktree at `path` a new owner token; return it and the admin directory."""
        admin = await asyncio.to_thread(_admin_dir, path)
        if admin is None:
            raise GitError(("worktree",), 1, f"{path} is not a linked worktree")
        if admin.resolve().parent != (clone / "worktrees").resolve():
            raise GitError(("worktree",), 1, f"{path} is not a worktree of the clone")
        owner = uuid.uuid4().hex
        await asyncio.to_thread((admin / _OWNER_FILE).write_text, owner, encoding="ascii")
        return owner, admin.resolve()

    async def _owner(self, path: Path) -> str | None:
        """The owner token of the worktree at `path`, or None when there is none."""
        admin = await asyncio.to_thread(_admin_dir, path)
        if admin is None:
            return None
        try:
            return (
                await asyncio.to_thread((admin / _OWNER_FILE).read_text, encoding="ascii")
            ).strip()
        except OSError:
            return None

    # -- commits -------------------------------------------------------------------

    async def head(self, worktree: Worktree) -> str:
        """The commit the worktree is at."""
        return (
            await self.git.run("rev-parse", "HEAD", cwd=worktree.path, env=_env(worktree))
        ).strip()

    async def changed_paths(self, worktree: Worktree) -> list[str]:
        """Paths with uncommitted changes, untracked files included (relative to the worktree)."""
        out = await self.git.run(
            "status",
            "--porcelain",
            "--untracked-files=all",
            "-z",
            cwd=worktree.path,
            env=_env(worktree),
        )
        entries = [e for e in out.split("\0") if e]
        paths: list[str] = []
        skip_next = False
        for entry in entries:
            if skip_next:  # the source path of a rename
                skip_next = False
                continue
            if entry[:1] in ("R", "C"):
                skip_next = True
            paths.append(entry[3:])
        return paths

    async def read_base_file(self, worktree: Worktree, name: str) -> str | None:
        """The text of `name` on the remote base branch as fetched, or None when absent."""
        code, out, _ = await self.git.run_full(
            "show",
            f"refs/remotes/{REMOTE}/{worktree.base_branch}:{name}",
            cwd=worktree.path,
            env=_env(worktree),
        )
        return out if code == 0 else None

    async def commit_all(self, worktree: Worktree, message: str) -> str | None:
        """Commit everything left uncommitted (new files included); None when nothing was.

        Returns the new commit's sha.
        """
        env = _env(worktree)
        await self.git.run("add", "--all", cwd=worktree.path, env=env)
        code, _, _ = await self.git.run_full(
            "diff", "--cached", "--quiet", cwd=worktree.path, env=env
        )
        if code == 0:
            return None
        await self.git.run(
            "commit",
            "--quiet",
            "--no-verify",
            "-m",
            message,
            cwd=worktree.path,
            env={**env, **self.author.env()},
        )
        return await self.head(worktree)

    async def catch_up(self, worktree: Worktree) -> CaughtUp:
        """Bring the branch up to date with the base branch if the base moved meanwhile.

        The base is fetched again first (it may have moved while the agent worked). A
        branch never pushed is rebased onto it (a straight history for the pull
        request); a pushed one gets a merge commit instead, since rewriting what was
        pushed would need a force-push (never done) and would lose reviewers' context.
        A conflict is undone and reported with the conflicting files; nothing changes.
        """
        clone = self.clone_path(worktree.repo)
        async with self._locks.hold(clone):
            await self._fetch(clone, worktree.url)
        env = _env(worktree)
        base = f"refs/remotes/{REMOTE}/{worktree.base_branch}"
        code, _, _ = await self.git.run_full(
            "merge-base", "--is-ancestor", base, "HEAD", cwd=worktree.path, env=env
        )
        if code == 0:
            return CaughtUp(moved=False)
        pushed = worktree.branch is not None and await self.remote_sha(clone, worktree.branch)
        verb = ("merge", "--no-edit", "--no-verify", base) if pushed else ("rebase", base)
        code, _, _ = await self.git.run_full(
            *verb, cwd=worktree.path, env={**env, **self.author.env()}
        )
        if code == 0:
            return CaughtUp(moved=True, how="merge" if pushed else "rebase")
        conflicts = await self.git.run(
            "diff", "--name-only", "--diff-filter=U", cwd=worktree.path, env=env
        )
        await self.git.run_full(verb[0], "--abort", cwd=worktree.path, env=env)
        files = tuple(sorted(p for p in conflicts.splitlines() if p))
        return CaughtUp(moved=True, how=verb[0], conflicts=files or ("(unknown)",))

    async def commits_ahead(self, worktree: Worktree) -> int:
        """How many commits the worktree has that the remote base branch does not."""
        out = await self.git.run(
            "rev-list",
            "--count",
            f"refs/remotes/{REMOTE}/{worktree.base_branch}..HEAD",
            cwd=worktree.path,
            env=_env(worktree),
        )
        return int(out.strip() or "0")

    async def workflow_changes(self, worktree: Worktree) -> list[str]:
        """Paths under `.github/workflows/` the worktree's commits change from the base branch."""
        out = await self.git.run(
            "diff",
            "--name-only",
            "--no-renames",
            "-z",
            f"refs/remotes/{REMOTE}/{worktree.base_branch}...HEAD",
            "--",
            WORKFLOWS_DIR,
            cwd=worktree.path,
            env=_env(worktree),
        )
        return sorted(p for p in out.split("\0") if p)

    async def push(self, worktree: Worktree) -> str:
        """Push the worktree's HEAD to its branch on the remote; return the pushed sha.

        Idempotent: pushing a commit the remote already has succeeds. Only
        fast-forwards are pushed, so a branch someone else moved is an error
        rather than lost work. Changes under `.github/workflows/` are refused
        (`WorkflowChangesRefused`) unless `allow_workflow_changes`.

        Runs from the clone, under its lock, after rewriting its config: no
        planted setting (`url.*.insteadOf`, `pushurl`, a helper) can send the
        token elsewhere; redirects are not followed.
        """
        if worktree.branch is None:
            raise GitError(("push",), 1, "a detached checkout has no branch to push")
        if not self.allow_workflow_changes:
            refused = await self.workflow_changes(worktree)
            if refused:
                raise WorkflowChangesRefused(refused)
        sha = await self.head(worktree)
        clone = self.clone_path(worktree.repo)
        token = (
            None if self.push_tokens is None else await self.push_tokens.push_token(worktree.repo)
        )
        async with self._locks.hold(clone):
            await self._reset_config(clone, worktree.url)
            await self.git.run(
                "push",
                "--quiet",
                "--no-verify",
                "--no-recurse-submodules",
                worktree.url,
                f"{sha}:refs/heads/{worktree.branch}",
                cwd=clone,
                env=transport_env(worktree.url),
                config=push_auth_config(token),
            )
        return sha

    async def push_refspecs(self, repo: str, url: str, refspecs: Sequence[str]) -> None:
        """Push `refspecs` (`+src:dst` forces, `:dst` deletes) from the clone of `repo`, as
        `push` does: under the clone's lock, its config rewritten, the token in this push's
        environment alone. The caller checks the lease first (a push is a mutation)."""
        clone = self.clone_path(repo)
        token = None if self.push_tokens is None else await self.push_tokens.push_token(repo)
        async with self._locks.hold(clone):
            await self._reset_config(clone, url)
            await self.git.run(
                "push",
                "--quiet",
                "--no-verify",
                "--no-recurse-submodules",
                url,
                *refspecs,
                cwd=clone,
                env=transport_env(url),
                config=push_auth_config(token),
            )

    async def fetch_refspecs(self, repo: str, url: str, refspecs: Sequence[str]) -> None:
        """Fetch `refspecs` from `url` into the clone of `repo` (pruning their destinations),
        authenticated like a push: hidden refs of a private repository need the token."""
        clone = self.clone_path(repo)
        token = None if self.push_tokens is None else await self.push_tokens.push_token(repo)
        async with self._locks.hold(clone):
            await self._reset_config(clone, url)
            await self.git.run(
                "fetch",
                "--quiet",
                "--prune",
                "--no-recurse-submodules",
                "--no-tags",
                url,
                *refspecs,
                cwd=clone,
                env=transport_env(url),
                config=push_auth_config(token),
            )

    def worktree_env(self, worktree: Worktree) -> dict[str, str]:
        """The environment naming the worktree's git directory (its `.git` file is untrusted)."""
        return _env(worktree)


@dataclass(frozen=True)
class CaughtUp:
    """What `Workspace.catch_up` did: nothing, a rebase or a merge, or found conflicts."""

    moved: bool  # the base had commits the branch did not
    how: str = ""  # "rebase" | "merge"
    conflicts: tuple[str, ...] = ()  # set: nothing was changed, these files conflict


@dataclass(frozen=True)
class FixedPushToken:
    """`PushTokens` with one token for every repository (a personal access token)."""

    token: str = field(repr=False)

    async def push_token(self, repo: str) -> str:
        """The same token, whatever the repository."""
        return self.token


def push_auth_config(token: str | None) -> tuple[tuple[str, str], ...]:
    """The settings a push gets: the token as an `Authorization` header, no redirects.

    Given to git through `GIT_CONFIG_*` variables of the push alone (never a URL,
    a file, or argv, where `ps` would show it).
    """
    settings = [("http.followRedirects", "false")]
    if token:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode("ascii")
        settings.append(("http.extraHeader", f"AUTHORIZATION: basic {basic}"))
    return tuple(settings)


def _on(path: Path, admin: Path | None) -> dict[str, str]:
    """Environment naming the worktree's git directory itself (its `.git` file is not trusted)."""
    return {"GIT_DIR": str(admin), "GIT_WORK_TREE": str(path)} if admin else {}


def _env(worktree: Worktree) -> dict[str, str]:
    return _on(worktree.path, worktree.admin)


def _remove_lock_files(clone: Path) -> None:
    """Delete stale `*.lock` files of refs (left when a git process was killed)."""
    for lock in [*clone.glob("refs/**/*.lock"), *clone.glob("*.lock")]:
        lock.unlink(missing_ok=True)


def _admin_dir(path: Path) -> Path | None:
    """The administrative directory of the linked worktree at `path` (None: not one).

    Read from its `.git` file (`gitdir: <dir>`) rather than asking git, which
    would walk up to an enclosing repository when `path` is not a worktree.
    """
    try:
        text = (path / ".git").read_text(encoding="utf-8")
    except OSError:  # missing, or a directory (not a linked worktree)
        return None
    if not text.startswith("gitdir:"):
        return None
    admin = path / text.removeprefix("gitdir:").strip()  # an absolute dir stays as it is
    return admin if admin.is_dir() else None


_TASK_DIR = re.compile(r"issue-([1-9][0-9]{0,9})")


def _task_dirs(worktrees: Path) -> list[TaskDir]:
    """`worktrees/<repo_dir>/issue-<N>` directories, each with its newest checkout time."""
    found: list[TaskDir] = []
    for repo_dir in _children(worktrees):
        for path in _children(repo_dir):
            match = _TASK_DIR.fullmatch(path.name)
            if match is not None:
                found.append(TaskDir(repo_dir.name, int(match.group(1)), path, _touched(path)))
    return found


def _children(path: Path) -> list[Path]:
    """The directories in `path` (not following symlinks); none when it is not one."""
    try:
        return sorted(p for p in path.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return []


def _touched(task_dir: Path) -> float:
    """When a worktree of the task was last checked out: the newest owner stamp (written
    at every checkout), else the newest worktree directory, else the task directory."""
    times = [_mtime(task_dir)]
    for child in _children(task_dir):
        admin = _admin_dir(child)
        stamp = _mtime(admin / _OWNER_FILE) if admin is not None else None
        times.append(stamp if stamp is not None else _mtime(child))
    return max((t for t in times if t is not None), default=0.0)


def _mtime(path: Path) -> float | None:
    try:
        return path.lstat().st_mtime
    except OSError:
        return None


def _remove_empty_dirs(start: Path, stop: Path) -> None:
    """Remove `start` and then its parents while they are empty, up to (not including) `stop`."""
    current = start
    while current != stop and stop in current.parents:
        try:
            current.rmdir()
        except OSError:  # not empty (or already gone): a sibling is still in use
            if current.exists():
                return
        current = current.parent
