"""Local bare repositories standing in for a forge's remote (tests and the offline demo)."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from agent_workflow.workspace.git import Git
from agent_workflow.workspace.workspace import GitAuthor

_SEED_AUTHOR = GitAuthor(name="Seed", email="seed@example.invalid")


async def _commit_files(git: Git, work: Path, files: Mapping[str, str], message: str) -> None:
    """Write `files` into the checkout `work` and commit them as the seed author."""
    for name, text in files.items():
        target = work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    await git.run("add", "--all", cwd=work)
    await git.run(
        "-c",
        "commit.gpgsign=false",
        "commit",
        "--quiet",
        "-m",
        message,
        cwd=work,
        env=_SEED_AUTHOR.env(),
    )


async def make_remote(
    path: Path, files: Mapping[str, str], *, branch: str = "main", git: Git | None = None
) -> str:
    """Create a bare repository at `path` whose `branch` holds `files`; return its URL (the path)."""
    git = git or Git()
    await git.run("init", "--quiet", "--bare", f"--initial-branch={branch}", str(path))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        await git.run("init", "--quiet", f"--initial-branch={branch}", cwd=work)
        await _commit_files(git, work, files, "initial")
        await git.run("push", "--quiet", str(path), f"HEAD:refs/heads/{branch}", cwd=work)
    return str(path)


async def remote_sha(remote: str, branch: str, git: Git | None = None) -> str | None:
    """The head of `branch` in the bare repository `remote`, or None when absent."""
    code, out, _ = await (git or Git()).run_full(
        "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", cwd=Path(remote)
    )
    return out.strip() if code == 0 else None


async def remote_file(remote: str, branch: str, name: str, git: Git | None = None) -> str | None:
    """The text of `name` on `branch` of the bare repository `remote`, or None when absent."""
    code, out, _ = await (git or Git()).run_full("show", f"{branch}:{name}", cwd=Path(remote))
    return out if code == 0 else None


async def remote_log(remote: str, branch: str, git: Git | None = None) -> list[str]:
    """`<author name>|<subject>` of every commit on `branch`, newest first."""
    out = await (git or Git()).run("log", "--format=%an|%s", branch, cwd=Path(remote))
    return out.splitlines()


async def push_commit(
    remote: str, branch: str, files: Mapping[str, str], message: str, git: Git | None = None
) -> str:
    """Commit `files` on top of `branch` in `remote` (as another contributor); return the sha."""
    git = git or Git()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "w"
        await git.run("clone", "--quiet", "--branch", branch, remote, str(work))
        await _commit_files(git, work, files, message)
        await git.run("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=work)
        return (await git.run("rev-parse", "HEAD", cwd=work)).strip()
