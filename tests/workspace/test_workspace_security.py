"""The agent attacks the worker's git from its worktree; none of it reaches the worker.

"The agent" here is plain `git` run in its worktree with the ambient environment,
as an agent's shell would: `git config` there writes the shared clone's config.
"""

from __future__ import annotations

import base64
import os
import stat
import subprocess
from pathlib import Path

import pytest

from agent_workflow.workspace import Workspace
from agent_workflow.workspace.git import Git, transport_env
from agent_workflow.workspace.workspace import (
    WorkflowChangesRefused,
    Worktree,
    push_auth_config,
)
from tests.support.git_seed import make_remote, remote_file, remote_sha
from tests.workspace.conftest import REPO

BRANCH = "agent/issue-7"
HOOKS = ("pre-commit", "post-commit", "pre-push", "post-checkout", "reference-transaction")


def _agent_git(worktree: Path, *args: str) -> None:
    """Run git in the worktree as the agent would (its own process, the ambient env)."""
    subprocess.run(["git", *args], cwd=worktree, check=True, capture_output=True)


def _hook(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\necho "$0 $GIT_CONFIG_VALUE_0" >> {marker}\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


async def _deliver(ws: Workspace, remote: str, issue: int = 7) -> Worktree:
    return await ws.checkout(
        REPO,
        remote,
        issue_number=issue,
        name="deliver",
        base_branch="main",
        branch=f"agent/issue-{issue}",
    )


async def test_planted_hooks_never_run_in_the_workers_git(
    workspace: Workspace, remote: str, tmp_path: Path
) -> None:
    marker = tmp_path / "hook-ran"
    wt = await _deliver(workspace, remote)
    planted = tmp_path / "planted-hooks"
    for name in HOOKS:
        _hook(planted / name, marker)  # via core.hooksPath, set from the worktree
        _hook(workspace.clone_path(REPO) / "hooks" / name, marker)  # the clone's own hooks dir
    _hook(tmp_path / "fsmonitor", marker)
    _agent_git(wt.path, "config", "core.hooksPath", str(planted))
    _agent_git(wt.path, "config", "core.fsmonitor", str(tmp_path / "fsmonitor"))
    assert "planted-hooks" in (workspace.clone_path(REPO) / "config").read_text()  # shared

    (wt.path / "NEW.md").write_text("new\n")
    sha = await workspace.commit_all(wt, "work")
    assert await workspace.push(wt) == sha
    # The agent plants it again (a checkout rewrites the config), then another issue starts.
    _agent_git(wt.path, "config", "core.hooksPath", str(planted))
    other = await _deliver(workspace, remote, issue=8)
    (other.path / "OTHER.md").write_text("other\n")
    await workspace.commit_all(other, "other work")
    await workspace.push(other)

    assert await remote_sha(remote, BRANCH) == sha
    assert not marker.exists(), marker.read_text()


async def test_a_planted_remote_redirect_does_not_take_the_push_or_the_fetch(
    workspace: Workspace, remote: str, tmp_path: Path
) -> None:
    evil = await make_remote(tmp_path / "evil.git", {"README.md": "evil\n"})
    wt = await _deliver(workspace, remote)
    _agent_git(wt.path, "config", f"url.{evil}.insteadOf", remote)
    _agent_git(wt.path, "config", "remote.origin.pushurl", evil)
    _agent_git(wt.path, "config", "remote.origin.url", evil)
    (wt.path / "NEW.md").write_text("new\n")
    sha = await workspace.commit_all(wt, "work")

    await workspace.push(wt)

    assert await remote_sha(remote, BRANCH) == sha
    assert await remote_sha(evil, BRANCH) is None
    _agent_git(wt.path, "config", f"url.{evil}.insteadOf", remote)
    other = await _deliver(workspace, remote, issue=8)
    assert (other.path / "README.md").read_text() == "hello\n"  # fetched from the real remote


async def test_a_rewritten_dot_git_file_does_not_move_the_workers_commit(
    workspace: Workspace, remote: str, tmp_path: Path
) -> None:
    wt = await _deliver(workspace, remote)
    decoy = tmp_path / "decoy"
    _agent_git(tmp_path, "init", "--quiet", str(decoy))
    (wt.path / ".git").write_text(f"gitdir: {decoy / '.git'}\n")
    (wt.path / "NEW.md").write_text("new\n")

    sha = await workspace.commit_all(wt, "work")
    await workspace.push(wt)

    assert sha is not None
    assert await remote_sha(remote, BRANCH) == sha
    assert await remote_file(remote, BRANCH, "NEW.md") == "new\n"


async def test_workflow_changes__not_pushed_unless_allowed(
    workspace: Workspace, remote: str
) -> None:
    wt = await _deliver(workspace, remote)
    (wt.path / ".github" / "workflows").mkdir(parents=True)
    (wt.path / ".github" / "workflows" / "x.yml").write_text("on: push\n")
    (wt.path / "ok.md").write_text("fine\n")
    await workspace.commit_all(wt, "adds a workflow")

    with pytest.raises(WorkflowChangesRefused) as refused:
        await workspace.push(wt)

    assert refused.value.paths == [".github/workflows/x.yml"]
    assert ".github/workflows/x.yml" in str(refused.value)
    assert await remote_sha(remote, BRANCH) is None
    allowed = Workspace(workspace.root, allow_workflow_changes=True)
    assert await allowed.push(wt) == await remote_sha(remote, BRANCH)


def test_push_auth__the_token_goes_in_a_header_for_the_push_alone() -> None:
    settings = dict(push_auth_config("ghs_secret"))
    header = settings["http.extraHeader"]
    assert header.startswith("AUTHORIZATION: basic ")
    assert base64.b64decode(header.split()[-1]).decode() == "x-access-token:ghs_secret"
    assert settings["http.followRedirects"] == "false"
    assert "http.extraHeader" not in dict(push_auth_config(None))


def test_transport__only_the_protocols_the_url_needs() -> None:
    assert transport_env("https://github.com/acme/widgets.git") == {"GIT_ALLOW_PROTOCOL": "https"}
    assert transport_env("/srv/remote.git") == {"GIT_ALLOW_PROTOCOL": "https:file"}
    assert transport_env("git@github.com:acme/widgets.git") == {"GIT_ALLOW_PROTOCOL": "https"}


class _RecordingTokens:
    """One token, recording which repository each push asked it for."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.asked: list[str] = []

    async def push_token(self, repo: str) -> str:
        self.asked.append(repo)
        return self.token


async def test_the_token_reaches_the_push_alone_and_no_file(
    workspace: Workspace, remote: str, tmp_path: Path
) -> None:
    token = "ghs_Tok3nThatMustNotLeak"
    encoded = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    seen = tmp_path / "seen-env"
    # A git wrapper recording the environment of every command the workspace runs.
    wrapper = tmp_path / "git-wrapper"
    wrapper.write_text(
        f'#!/bin/sh\nenv | grep -c -e {token} -e {encoded} >> {seen} || true\nexec git "$@"\n'
    )
    wrapper.chmod(0o755)
    tokens = _RecordingTokens(token)
    ws = Workspace(workspace.root, git=Git(executable=str(wrapper)), push_tokens=tokens)
    wt = await _deliver(ws, remote)
    (wt.path / "NEW.md").write_text("new\n")
    await ws.commit_all(wt, "work")
    before = seen.read_text().split()

    await ws.push(wt)

    counts = seen.read_text().split()[len(before) :]
    assert set(before) == {"0"}  # no command before the push saw it
    assert counts[-1] == "1"  # the push did, once (a GIT_CONFIG_VALUE_n)
    for root in (ws.root, Path(remote)):
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                assert token.encode() not in data, path
                assert encoded.encode() not in data, path
    assert os.environ.get("GIT_CONFIG_COUNT") is None
    assert tokens.asked == [REPO]  # a token for this repository, asked at the push
