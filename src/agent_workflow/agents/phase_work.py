"""The workspace around an agent run: checkout before, commit and push after.

Every agent that edits a repository (Claude, a configured command) runs the
same way; only the part in the middle differs, and it gets a `PhaseWork`:

- plan: a detached, read-only checkout of the default branch.
- deliver: a worktree on `request.branch` (from the remote branch when it exists,
  so a retry continues from pushed work). Afterwards everything left uncommitted
  is committed and the branch pushed, for SUCCESS and for BLOCKED (the work
  spent is kept; only SUCCESS leads to a pull request). A SUCCESS that changed
  nothing becomes BLOCKED.
- revise/repair (rounds after the pull request): a worktree on `request.branch`
  from the pushed branch; afterwards commit and push (fast-forward, never forced).
  A revise round may change nothing (each reply says why); a repair round that
  changed nothing becomes BLOCKED (the checks would fail again). The agent's
  `### Reply to <id>` sections become `reply:<id>` artifacts.
- compound: a worktree on `<branch>-compound` from the merged default branch;
  on SUCCESS the solution note and the CLAUDE.md pointer are made sure of,
  committed and pushed. Those writes never follow a symlink out of the worktree
  (the phase is BLOCKED instead).
- a push whose commits change `.github/workflows/` is refused unless
  `AW_ALLOW_WORKFLOW_CHANGES` (`Workspace.allow_workflow_changes`): nothing is
  pushed and the phase is BLOCKED, naming the files.

Worktrees: once the attempt has ended for good (SUCCESS or BLOCKED, after the
push) its worktree and local branch are released (`Workspace.release`). After
ERROR the worktree is kept as it is, because the retry resumes the session
that edited it (on this machine, possibly under another claim). A worker that
may have lost its lease releases nothing: the worktree may be the new
holder's by now (`release` itself also refuses a worktree another checkout
has taken over). A failed release is logged and leaves the result as it is.

Checkpoints (`keep_checkpoints`, see `workspace.checkpoints`): in an editing phase the
runner may save the worktree's state to a hidden ref on the remote after each turn that
changed files (`PhaseWork.checkpoint`); a takeover (resumed or later attempt) starts from
the newest one on its base, so work done on a dead worker's machine is not lost; a phase
that settled (SUCCESS or BLOCKED) deletes them.

Artifacts (`AgentResult.artifacts`) after deliver and compound:

    branch        the pushed branch
    head_sha      the commit the branch points at on the remote
    base_branch   the branch a pull request should target (the default branch)
    solution_path (compound) the lesson's path in the repository

Cancellation propagates untouched: a cancelled run commits and pushes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from agent_workflow.agents import compound, prompts, round_input
from agent_workflow.core.errors import LeaseLost
from agent_workflow.core.hooks import REPOSITORY_PREFIX
from agent_workflow.core.lease import assert_lease_held
from agent_workflow.core.model import Phase
from agent_workflow.core.ports import AgentRequest, AgentResult, Outcome
from agent_workflow.workspace import checkpoints
from agent_workflow.workspace.git import GitError
from agent_workflow.workspace.limiter import RunLimiter
from agent_workflow.workspace.workspace import WorkflowChangesRefused, Workspace, Worktree

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PhaseWork:
    """One run's inputs: the request, where to work, and what to say."""

    request: AgentRequest
    cwd: Path
    prompt: str  # the phase prompt, for a fresh session
    resume_prompt: str  # what to say when resuming an interrupted session
    read_only: bool  # plan: no edits anywhere
    # Saves the worktree's state to the attempt's checkpoint ref when it changed (after a
    # turn that edited files); None: no checkpoints (plan, or switched off).
    checkpoint: Callable[[], Awaitable[object]] | None = None

    @property
    def phase(self) -> Phase:
        """The phase being run."""
        return self.request.phase


Runner = Callable[[PhaseWork], Awaitable[AgentResult]]


async def run_phase(
    request: AgentRequest,
    workspace: Workspace,
    runner: Runner,
    limiter: RunLimiter | None = None,
    *,
    keep_checkpoints: bool = False,
) -> AgentResult:
    """Check out, run `runner` in the checkout, then commit/push as the phase requires.

    `keep_checkpoints`: an editing phase's takeover starts from its newest checkpoint, the
    runner gets `PhaseWork.checkpoint`, and the phase's checkpoints are deleted once it
    settled (SUCCESS or BLOCKED; after ERROR a retry may still need them).
    """
    slot = limiter.slot(request.repo) if limiter else contextlib.nullcontext()
    async with slot:
        try:
            worktree = await _checkout(workspace, request)
            work = await _work(workspace, worktree, request)
        except GitError as exc:
            return AgentResult(
                Outcome.ERROR, reason=f"workspace: {exc}", session_id=request.session_id
            )
        keeping = keep_checkpoints and not work.read_only and worktree.branch is not None
        if keeping:
            work = await _with_checkpoints(workspace, worktree, work)
        result = await runner(work)
        try:
            final = await _finish(workspace, worktree, request, result)
        except GitError as exc:
            return dataclasses.replace(result, outcome=Outcome.ERROR, reason=f"workspace: {exc}")
        if keeping and final.outcome is not Outcome.ERROR:
            await _drop_checkpoints(workspace, worktree, request)
        return final


async def _with_checkpoints(workspace: Workspace, worktree: Worktree, work: PhaseWork) -> PhaseWork:
    """A takeover's worktree from the newest checkpoint; the run's checkpoint saver."""
    request = work.request
    phase, owner = request.phase.value, _owner(request)
    if request.resume or request.attempt > 1:
        try:
            restored = await checkpoints.restore_newest(workspace, worktree, owner, phase)
        except GitError as exc:  # the pushed branch is still there to start from
            log.warning(
                "checkpoint.restore_failed", task=request.task_id, phase=phase, error=str(exc)
            )
        else:
            if restored is not None:
                log.info("checkpoint.restored", task=request.task_id, phase=phase, commit=restored)
    saver = checkpoints.Checkpointer(workspace, worktree, owner, phase, request.attempt)
    return dataclasses.replace(work, checkpoint=saver.save)


async def _drop_checkpoints(
    workspace: Workspace, worktree: Worktree, request: AgentRequest
) -> None:
    """Delete the settled phase's checkpoints; a failure leaves harmless leftovers."""
    try:
        await checkpoints.delete_all(workspace, worktree, _owner(request), request.phase.value)
    except (GitError, LeaseLost) as exc:
        log.warning(
            "checkpoint.delete_failed",
            task=request.task_id,
            phase=request.phase.value,
            error=str(exc),
        )


def _owner(request: AgentRequest) -> checkpoints.Owner:
    return checkpoints.Owner(request.task_id, request.issue_number)


async def _checkout(workspace: Workspace, request: AgentRequest) -> Worktree:
    match request.phase:
        case Phase.PLAN:
            name, branch = "plan", None
        case Phase.DELIVER | Phase.REVISE | Phase.REPAIR:
            name, branch = request.phase.value, request.branch
        case Phase.COMPOUND:
            name, branch = "compound", compound.compound_branch(request)
        case _:
            raise AssertionError(f"unknown phase {request.phase!r}")
    return await workspace.checkout(
        request.repo,
        request.clone_url,
        issue_number=request.issue_number,
        name=name,
        base_branch=request.default_branch,
        branch=branch,
        keep=request.resume,
    )


async def _template(workspace: Workspace, worktree: Worktree, name: str) -> str:
    override = await workspace.read_base_file(worktree, prompts.override_path(name))
    return override if override is not None else prompts.default_template(name)


async def _work(workspace: Workspace, worktree: Worktree, request: AgentRequest) -> PhaseWork:
    extra = {"branch": worktree.branch or request.default_branch}
    if request.phase is Phase.COMPOUND:
        extra["solution_path"] = compound.solution_path(request)
    values = prompts.template_values(request, extra)
    prompt = prompts.render(await _template(workspace, worktree, request.phase.value), values)
    resume = prompts.render(await _template(workspace, worktree, prompts.RESUME), values)
    return PhaseWork(request, worktree.path, prompt, resume, request.phase is Phase.PLAN)


async def _finish(
    workspace: Workspace, worktree: Worktree, request: AgentRequest, result: AgentResult
) -> AgentResult:
    if result.outcome is Outcome.ERROR:
        return result  # keep the worktree: the retry resumes the session that edited it
    match request.phase:
        case Phase.PLAN:
            final = result
        case Phase.DELIVER:
            final = await _finish_deliver(workspace, worktree, request, result)
        case Phase.COMPOUND:
            final = await _finish_compound(workspace, worktree, request, result)
        case Phase.REVISE | Phase.REPAIR:
            final = await _finish_round(workspace, worktree, request, result)
        case _:
            raise AssertionError(f"unknown phase {request.phase!r}")
    await _release(workspace, worktree, request)  # after the push: nothing is lost
    return final


async def _release(workspace: Workspace, worktree: Worktree, request: AgentRequest) -> None:
    """Remove the worktree of an attempt that is over, unless the lease may be gone."""
    try:
        assert_lease_held()
    except LeaseLost:
        return  # another claim may be working in it by now; its own end releases it
    try:
        await workspace.release(worktree)
    except (GitError, OSError) as exc:  # clean-up only: the attempt's result stands
        log.warning(
            "workspace.release_failed",
            task=request.task_id,
            phase=request.phase.value,
            path=str(worktree.path),
            error=str(exc),
        )


def _commit_message(request: AgentRequest, result: AgentResult) -> str:
    state = "" if result.outcome is Outcome.SUCCESS else "WIP (blocked): "
    what = "lessons from" if request.phase is Phase.COMPOUND else "work on"
    return (
        f"{state}{request.title or 'issue'} (#{request.issue_number})\n\n"
        f"agent-workflow: {request.phase.value} {what} issue #{request.issue_number}, "
        f"attempt {request.attempt}."
    )


async def _commit_and_push(
    workspace: Workspace,
    worktree: Worktree,
    request: AgentRequest,
    result: AgentResult,
    *,
    since: str | None = None,
) -> dict[str, str] | None:
    """Commit leftovers and push; None when the branch has nothing beyond the base (or,
    for a round, nothing beyond `since`: the head when the round opened, so a round that
    pushed before a kill still reports what it pushed)."""
    await workspace.commit_all(worktree, _commit_message(request, result))
    if request.phase is not Phase.COMPOUND:
        caught = await workspace.catch_up(worktree)
        if caught.conflicts:
            raise BaseConflict(caught.conflicts)
    if request.phase.is_round:
        start = since
        if start is None:  # a round recorded before its start was: the fetched remote head
            clone = workspace.clone_path(worktree.repo)
            start = await workspace.remote_sha(clone, worktree.branch or request.branch)
        if await workspace.head(worktree) == start:
            return None
    elif await workspace.commits_ahead(worktree) == 0:
        return None
    assert_lease_held()  # a worker frozen past its lease must not push (G5)
    head = await workspace.push(worktree)
    return {"branch": worktree.branch or "", "head_sha": head, "base_branch": worktree.base_branch}


class BaseConflict(Exception):
    """The base branch moved and the branch conflicts with it (nothing was changed)."""

    def __init__(self, paths: tuple[str, ...]) -> None:
        self.paths = paths
        super().__init__(", ".join(paths))


def _blocked(result: AgentResult, reason: str) -> AgentResult:
    return dataclasses.replace(result, outcome=Outcome.BLOCKED, reason=reason)


def _refused_push(result: AgentResult, exc: WorkflowChangesRefused | BaseConflict) -> AgentResult:
    """BLOCKED, naming the repository's files (a reason the blocked comment publishes)."""
    files = ", ".join(exc.paths[:20]) + (" …" if len(exc.paths) > 20 else "")
    if isinstance(exc, BaseConflict):
        why = f"the base branch moved and conflicts with this branch in {files}"
    else:
        why = f"changes under .github/workflows/ are not pushed (AW_ALLOW_WORKFLOW_CHANGES is off): {files}"
    return _blocked(result, REPOSITORY_PREFIX + why)


async def _finish_deliver(
    workspace: Workspace, worktree: Worktree, request: AgentRequest, result: AgentResult
) -> AgentResult:
    try:
        pushed = await _commit_and_push(workspace, worktree, request, result)
    except (WorkflowChangesRefused, BaseConflict) as exc:
        return _refused_push(result, exc)
    if pushed is None:
        if result.outcome is Outcome.SUCCESS:
            reason = "the agent finished without changing anything"
            return dataclasses.replace(result, outcome=Outcome.BLOCKED, reason=reason)
        return result
    return dataclasses.replace(result, artifacts={**result.artifacts, **pushed})


async def _finish_round(
    workspace: Workspace, worktree: Worktree, request: AgentRequest, result: AgentResult
) -> AgentResult:
    summary, replies = round_input.replies(result.text)
    result = dataclasses.replace(result, text=summary, artifacts={**result.artifacts, **replies})
    try:
        # Only new commits on the pushed branch: a fast-forward push, never forced.
        since = request.round.start_sha if request.round is not None else ""
        pushed = await _commit_and_push(workspace, worktree, request, result, since=since or None)
    except (WorkflowChangesRefused, BaseConflict) as exc:
        return _refused_push(result, exc)
    if pushed is None:
        if result.outcome is Outcome.SUCCESS and request.phase is Phase.REPAIR:
            return _blocked(result, "the agent changed nothing, so the checks would fail again")
        return result
    return dataclasses.replace(result, artifacts={**result.artifacts, **pushed})


async def _finish_compound(
    workspace: Workspace, worktree: Worktree, request: AgentRequest, result: AgentResult
) -> AgentResult:
    if result.outcome is not Outcome.SUCCESS:
        return result
    wanted = compound.solution_path(request)
    changed = await workspace.changed_paths(worktree)
    notes = [p for p in changed if p.startswith(f"{compound.SOLUTIONS_DIR}/")]
    try:
        if not notes:
            if not await asyncio.to_thread((worktree.path / wanted).exists):
                await asyncio.to_thread(
                    compound.write_fallback_solution, worktree.path, wanted, request, result.text
                )
            notes = [wanted]
        await asyncio.to_thread(compound.ensure_pointer, worktree.path)
        pushed = await _commit_and_push(workspace, worktree, request, result)
    except WorkflowChangesRefused as exc:
        return _refused_push(result, exc)
    except compound.UnsafePath as exc:
        return _blocked(result, str(exc))
    if pushed is None:  # everything was already on the base branch
        return result
    solution = wanted if wanted in notes else sorted(notes)[0]
    artifacts = {**result.artifacts, **pushed, "solution_path": solution}
    return dataclasses.replace(result, artifacts=artifacts)
