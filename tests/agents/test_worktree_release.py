"""Worktrees are released once a phase attempt is over for good, and kept after an ERROR.

Real git throughout: a bare remote (tests/support/git_seed), the workspace's
cached clone and its linked worktrees.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from agent_workflow.agents.command import CommandAgent, CommandConfig
from agent_workflow.agents.phase_work import PhaseWork, Runner, run_phase
from agent_workflow.core.lease import LeaseWatch, watching
from agent_workflow.core.model import Phase
from agent_workflow.core.ports import AgentRequest, AgentResult, Outcome
from agent_workflow.workspace import Workspace
from agent_workflow.workspace.git import Git
from tests.agents.conftest import REPO
from tests.support.git_seed import remote_file, remote_sha


def writing(outcome: Outcome, text: str = "done") -> Runner:
    """A runner that edits the checkout (unless read-only) and ends with `outcome`."""

    async def run(work: PhaseWork) -> AgentResult:
        if not work.read_only:
            (work.cwd / "CHANGE.md").write_text(f"{work.phase.value}\n")
        return AgentResult(outcome, text=text, reason=text, session_id=work.request.session_id)

    return run


async def worktrees(workspace: Workspace) -> list[str]:
    """The linked worktrees the clone knows about (the bare clone itself left out)."""
    out = await Git().run("worktree", "list", "--porcelain", cwd=workspace.clone_path(REPO))
    paths = [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("worktree ")]
    return [p for p in paths if Path(p) != workspace.clone_path(REPO)]


async def local_branches(workspace: Workspace) -> list[str]:
    out = await Git().run(
        "for-each-ref", "--format=%(refname:short)", "refs/heads", cwd=workspace.clone_path(REPO)
    )
    return out.split()


@pytest.mark.parametrize("phase", [Phase.PLAN, Phase.DELIVER, Phase.COMPOUND])
@pytest.mark.parametrize("outcome", [Outcome.SUCCESS, Outcome.BLOCKED])
async def test_a_finished_attempt_leaves_no_worktree_behind(
    phase: Phase,
    outcome: Outcome,
    workspace: Workspace,
    make_request: Callable[..., AgentRequest],
) -> None:
    request = make_request(phase)

    result = await run_phase(request, workspace, writing(outcome))

    assert result.outcome is outcome, result.reason
    assert not workspace.task_dir(REPO, 7).exists()
    assert await worktrees(workspace) == []
    assert await local_branches(workspace) == []
    if phase is Phase.DELIVER:  # pushed before the release: nothing was lost
        assert await remote_file(request.clone_url, "agent/issue-7", "CHANGE.md") == "deliver\n"
        assert result.artifacts["head_sha"] == await remote_sha(request.clone_url, "agent/issue-7")


@pytest.mark.parametrize("phase", [Phase.PLAN, Phase.DELIVER, Phase.COMPOUND])
async def test_an_errored_attempt_keeps_its_worktree_for_the_resume(
    phase: Phase,
    workspace: Workspace,
    make_request: Callable[..., AgentRequest],
) -> None:
    request = make_request(phase)

    result = await run_phase(request, workspace, writing(Outcome.ERROR, "crashed"))

    assert result.outcome is Outcome.ERROR
    kept = workspace.task_dir(REPO, 7) / phase.value
    assert [Path(p) for p in await worktrees(workspace)] == [kept]
    if phase is not Phase.PLAN:
        assert (kept / "CHANGE.md").read_text() == f"{phase.value}\n"  # the edits wait there

    # The resumed attempt finds them, finishes, and then its worktree goes.
    seen: list[bool] = []

    async def resume(work: PhaseWork) -> AgentResult:
        seen.append((work.cwd / "CHANGE.md").exists())
        return AgentResult(Outcome.SUCCESS, text="done", session_id=request.session_id)

    again = await run_phase(
        make_request(phase, resume=True),
        workspace,
        resume,
    )

    assert again.outcome is Outcome.SUCCESS, again.reason
    assert seen == [phase is not Phase.PLAN]  # plan checkouts are always fresh
    assert not workspace.task_dir(REPO, 7).exists()
    assert await worktrees(workspace) == []


async def test_a_worker_that_may_have_lost_its_lease_releases_nothing(
    workspace: Workspace, make_request: Callable[..., AgentRequest]
) -> None:
    expired = LeaseWatch(confirmed_until=0.0, clock=lambda: 100.0, margin_s=0.0)
    with watching(expired):
        result = await run_phase(make_request(Phase.PLAN), workspace, writing(Outcome.SUCCESS))

    assert result.outcome is Outcome.SUCCESS
    assert len(await worktrees(workspace)) == 1  # possibly the new holder's by now


async def test_release_spares_a_worktree_another_claim_has_taken_over(
    workspace: Workspace, make_request: Callable[..., AgentRequest]
) -> None:
    request = make_request(Phase.DELIVER)

    async def overtaken(work: PhaseWork) -> AgentResult:
        # While this (frozen) run still works, another claim of the same session
        # resumes into the same worktree on this machine.
        await workspace.checkout(
            REPO,
            request.clone_url,
            issue_number=7,
            name="deliver",
            base_branch="main",
            branch=request.branch,
            keep=True,
        )
        return AgentResult(Outcome.BLOCKED, reason="stuck", session_id=request.session_id)

    result = await run_phase(request, workspace, overtaken)

    assert result.outcome is Outcome.BLOCKED
    assert [Path(p) for p in await worktrees(workspace)] == [
        workspace.task_dir(REPO, 7) / "deliver"
    ]
    assert await local_branches(workspace) == ["agent/issue-7"]


async def test_command_agent__worktree_released_after_success_kept_after_error(
    workspace: Workspace, make_request: Callable[..., AgentRequest], tmp_path: Path
) -> None:
    script = tmp_path / "agent.py"
    script.write_text(
        "import sys\n"
        "open('CHANGE.md', 'w').write('changed\\n')\n"
        "sys.exit(0 if sys.argv[1] == 'ok' else 3)\n"
    )

    def agent(mode: str) -> CommandAgent:
        command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} {mode}"
        # Unsandboxed: the stand-in lives in the test's directory (test_agent_sandbox
        # covers the sandbox).
        return CommandAgent(workspace, CommandConfig(command, sandbox=False))

    failed = await agent("fail").run(make_request(Phase.DELIVER))
    assert failed.outcome is Outcome.ERROR
    assert (workspace.task_dir(REPO, 7) / "deliver" / "CHANGE.md").exists()

    done = await agent("ok").run(make_request(Phase.DELIVER, resume=True))
    assert done.outcome is Outcome.SUCCESS, done.reason
    assert await remote_file(make_request().clone_url, "agent/issue-7", "CHANGE.md") == "changed\n"
    assert not workspace.task_dir(REPO, 7).exists()
    assert await worktrees(workspace) == []
