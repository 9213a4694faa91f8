"""What an agent leaves in its worktree cannot push CI workflows or write outside it."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from agent_workflow.agents import compound
from agent_workflow.agents.command import CommandAgent, CommandConfig
from agent_workflow.core.model import Phase
from agent_workflow.core.ports import AgentRequest, Outcome
from agent_workflow.workspace import Workspace
from tests.support.git_seed import remote_file, remote_sha

# A stand-in agent: adds a CI workflow next to an ordinary change, or plants symlinks
# out of its worktree where the compound phase writes (argv[2] is the outside dir).
AGENT = """
import os, sys
mode, outside = sys.argv[1], sys.argv[2]
if mode == "workflow":
    os.makedirs(".github/workflows", exist_ok=True)
    open(".github/workflows/x.yml", "w").write("on: push\\njobs: {}\\n")
    open("perimeter.md", "w").write("changed\\n")
elif mode == "symlinks":
    os.makedirs("docs", exist_ok=True)
    os.symlink(outside, "docs/solutions")
    os.symlink(os.path.join(outside, "CLAUDE.md"), "CLAUDE.md")
print("Done.")
"""


@pytest.fixture
def run_agent(
    workspace: Workspace, tmp_path: Path
) -> Callable[[str, Workspace | None], CommandAgent]:
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    outside = tmp_path / "outside"
    outside.mkdir()

    def build(mode: str, ws: Workspace | None = None) -> CommandAgent:
        command = " ".join(
            shlex.quote(a) for a in (sys.executable, str(script), mode, str(outside))
        )
        # Unsandboxed: the stand-in links to the test's directory (what the push must stop).
        return CommandAgent(ws or workspace, CommandConfig(command, sandbox=False))

    return build


async def test_deliver__a_workflow_change_is_not_pushed_and_blocks_naming_the_file(
    run_agent: Callable[[str, Workspace | None], CommandAgent],
    make_request: Callable[..., AgentRequest],
    remote: str,
) -> None:
    result = await run_agent("workflow", None).run(make_request(Phase.DELIVER))

    assert result.outcome is Outcome.BLOCKED
    assert ".github/workflows/x.yml" in result.reason
    assert "AW_ALLOW_WORKFLOW_CHANGES" in result.reason
    assert await remote_sha(remote, "agent/issue-7") is None
    assert "branch" not in result.artifacts


async def test_deliver__a_workflow_change_is_pushed_when_allowed(
    run_agent: Callable[[str, Workspace | None], CommandAgent],
    make_request: Callable[..., AgentRequest],
    workspace: Workspace,
    remote: str,
) -> None:
    allowed = Workspace(workspace.root, allow_workflow_changes=True)

    result = await run_agent("workflow", allowed).run(make_request(Phase.DELIVER))

    assert result.outcome is Outcome.SUCCESS
    assert await remote_file(remote, "agent/issue-7", ".github/workflows/x.yml") is not None


async def test_compound__writes_never_follow_a_symlink_out_of_the_worktree(
    run_agent: Callable[[str, Workspace | None], CommandAgent],
    make_request: Callable[..., AgentRequest],
    tmp_path: Path,
    remote: str,
) -> None:
    result = await run_agent("symlinks", None).run(make_request(Phase.COMPOUND))

    assert list((tmp_path / "outside").iterdir()) == []
    assert result.outcome is Outcome.BLOCKED
    assert "leads out of the worktree" in result.reason
    assert await remote_sha(remote, "agent/issue-7-compound") is None


def test_compound_writes__a_symlinked_file_outside_is_left_alone(tmp_path: Path) -> None:
    root, outside = tmp_path / "wt", tmp_path / "outside.md"
    root.mkdir()
    outside.write_text("precious\n")
    (root / "CLAUDE.md").symlink_to(outside)

    with pytest.raises(compound.UnsafePath):
        compound.ensure_pointer(root)

    assert outside.read_text() == "precious\n"
    (root / "CLAUDE.md").unlink()
    (root / "AGENTS.md").write_text("# agents\n")
    (root / "CLAUDE.md").symlink_to("AGENTS.md")  # inside the worktree: fine
    assert compound.ensure_pointer(root)
    assert "docs/solutions/" in (root / "AGENTS.md").read_text()


async def test_deliver__the_base_moved_into_a_conflict__blocked_naming_the_file(
    workspace: Workspace, make_request: Callable[..., AgentRequest], remote: str, tmp_path: Path
) -> None:
    # While the agent works, someone pushes a conflicting change of README.md to main.
    script = tmp_path / "conflicting.sh"
    script.write_text(
        "set -e\n"
        'echo "ours" > README.md\n'
        f"git clone --quiet {shlex.quote(remote)} {shlex.quote(str(tmp_path / 'other'))}\n"
        f"cd {shlex.quote(str(tmp_path / 'other'))}\n"
        'echo "theirs" > README.md\n'
        "git -c user.name=o -c user.email=o@x commit --quiet -am theirs\n"
        "git push --quiet origin HEAD:main\n"
        "echo Done.\n"
    )
    # Unsandboxed: the stand-in reaches the test's remote itself (that is the base moving).
    agent = CommandAgent(
        workspace, CommandConfig(f"bash {shlex.quote(str(script))}", sandbox=False)
    )

    result = await agent.run(make_request(Phase.DELIVER))

    assert result.outcome is Outcome.BLOCKED
    assert result.reason.startswith("repository: the base branch moved")
    assert "README.md" in result.reason
    assert await remote_sha(remote, "agent/issue-7") is None  # nothing was pushed
