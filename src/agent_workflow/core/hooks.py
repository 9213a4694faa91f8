"""Phase hooks: the keyed effects each outcome produces, computed from durable state.

Each hook is a short sequence of `ledger.perform` calls. Calling a hook again
after a crash performs only what is outstanding: finished effects are `done`
in the ledger and cost no forge call.

Text that comes from the agent or the issue goes through `neutralise` before it is
posted (DESIGN §9); only the lines we write ourselves (such as "Closes #N") do not.
Nothing internal is published: a blocked/failed comment names a reason class and a
correlation id (`correlation_id`); the raw reason (stderr, exception text, paths, URLs)
stays in `phase_runs.blocked_reason` and the logs.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from agent_workflow.core.effects import Effect, EffectKind, EffectRow, effect_key
from agent_workflow.core.errors import EffectRefused
from agent_workflow.core.ledger import Ledger, Scope
from agent_workflow.core.model import Phase, PhaseRun, PhaseStatus, Task
from agent_workflow.core.neutralise import TITLE_LIMIT, cap_title, neutralise
from agent_workflow.core.ports import Round, RoundWork

LABEL_PLANNED = "agent-planned"
LABEL_DELIVERED = "agent-delivered"
LABEL_DONE = "agent-done"
LABEL_BLOCKED = "agent-blocked"
#: How the runner's stored reason starts when GitHub refused one of the phase's effects.
REFUSED_PREFIX = "github refused"
#: How a reason that names only repository paths starts (it is published as it is).
REPOSITORY_PREFIX = "repository: "
_PUBLIC_REASON = re.compile(
    r"(turn limit \d+ reached|budget \$[\d.]+ exhausted|task budget of \$[\d.]+ reached"
    r"|task budget exhausted|sandbox unavailable|" + re.escape(REPOSITORY_PREFIX) + ")"
)


@dataclass
class HookContext:
    """What a hook may use: the task, the finished run, and the ledger bound to its fence.

    A hook names its effects first (`begin`: one statement for all their rows), then
    performs them in order (`perform`: the forge call and its `done` record).
    """

    task: Task
    run: PhaseRun
    ledger: Ledger
    scope: Scope
    set_pr_number: Callable[[int], Awaitable[None]]
    # The pull request's head is now this commit, pushed by this run (idempotent).
    record_push: Callable[[str], Awaitable[None]] | None = None
    round: Round | None = None  # the round a revise/repair run worked on
    pr_draft: bool = False  # the deliver PR opens as a draft (`AW_PR_DRAFT`)
    _rows: dict[str, EffectRow] = field(default_factory=dict)

    def key(self, name: str) -> str:
        """The deterministic effect key for `name` in this run's attempt."""
        return effect_key(
            self.task.effect_repo, self.task.issue_number, self.run.phase, self.run.attempt, name
        )

    def comment(self, name: str, body: str = "") -> Effect:
        """A comment (the hidden marker is appended when it is posted)."""
        return Effect(
            self.key(name), EffectKind.COMMENT, self.task.repo, self.task.issue_number, body=body
        )

    def pr_comment(self, name: str, body: str = "") -> Effect:
        """A comment on the task's pull request (its conversation)."""
        return Effect(self.key(name), EffectKind.COMMENT, self.task.repo, self._pr(), body=body)

    def reply(self, name: str, comment_id: int, body: str) -> Effect:
        """A reply in the review thread of `comment_id` on the task's pull request."""
        return Effect(
            self.key(name),
            EffectKind.REPLY,
            self.task.repo,
            self._pr(),
            body=body,
            reply_to=comment_id,
        )

    def _pr(self) -> int:
        if self.task.pr_number is None:  # pragma: no cover - rounds start after the PR
            raise AssertionError(f"task {self.task.id} has no pull request")
        return self.task.pr_number

    async def pushed(self) -> str:
        """Record the commit this run pushed as the PR's head; returns it ("" if none)."""
        sha = self.run.artifacts.get("head_sha", "")
        if sha and self.record_push is not None:
            await self.record_push(sha)
        return sha

    def add_label(self, name: str, label: str) -> Effect:
        """Adding a label."""
        return Effect(
            self.key(name),
            EffectKind.ADD_LABELS,
            self.task.repo,
            self.task.issue_number,
            labels=(label,),
        )

    def remove_label(self, name: str, label: str) -> Effect:
        """Removing a label (absent counts as removed)."""
        return Effect(
            self.key(name),
            EffectKind.REMOVE_LABEL,
            self.task.repo,
            self.task.issue_number,
            labels=(label,),
        )

    def open_pr(
        self, name: str, *, head: str, title: str, body: str, draft: bool = False
    ) -> Effect:
        """Opening (or adopting) the pull request for `head`."""
        return Effect(
            self.key(name),
            EffectKind.OPEN_PR,
            self.task.repo,
            self.task.issue_number,
            body=body,
            head=head,
            base=self.task.default_branch,
            title=title,
            draft=draft,
        )

    def unblock(self) -> list[Effect]:
        """After a retry succeeds, take `agent-blocked` off (only then: it costs a call).
        A round's attempts are its rounds, not retries: nothing to take off."""
        retried = self.run.attempt > 1 and not self.run.phase.is_round
        return [self.remove_label("unblocked", LABEL_BLOCKED)] if retried else []

    async def begin(self, *effects: Effect) -> None:
        """Begin the rows of the effects this hook will perform, in one statement.

        Effects begun already are left out (a second begin would see its own row as
        left by an earlier attempt, and reconcile needlessly)."""
        new = [e for e in effects if e.key not in self._rows]
        if new:
            self._rows.update(await self.ledger.begin(new, self.scope))

    async def perform(self, effect: Effect) -> str | None:
        """Perform `effect` exactly once; its external id (comment id, PR number)."""
        # A begun row is used once: after this call it is out of date.
        return await self.ledger.perform(effect, self.scope, self._rows.pop(effect.key, None))

    def unperformed(self) -> list[str]:
        """Keys of effects begun here and not performed (a refusal stopped the hook)."""
        return list(self._rows)

    async def perform_all(self, *effects: Effect) -> None:
        """Begin the effects together, then perform them in order."""
        await self.begin(*effects)
        for effect in effects:
            await self.perform(effect)


async def on_plan_complete(ctx: HookContext) -> None:
    """One plan comment; label `agent-planned`."""
    plan = neutralise(ctx.run.result_text or "") or "(the agent returned an empty plan)"
    await ctx.perform_all(
        ctx.comment(
            "plan-comment",
            f"## Implementation plan\n\n{plan}\n\nComment `/approve` to have the agent implement it.",
        ),
        ctx.add_label("planned-label", LABEL_PLANNED),
        *ctx.unblock(),
    )


async def on_deliver_complete(ctx: HookContext) -> None:
    """One pull request ("Closes #N"), one comment linking it; label `agent-delivered`."""
    task = ctx.task
    head = ctx.run.artifacts.get("branch", task.branch)
    summary = neutralise(ctx.run.result_text or "")
    pull = ctx.open_pr(
        "pull-request",
        head=head,
        title=_pr_title(task),
        body=f"Closes #{task.issue_number}\n\n{summary}",
        draft=ctx.pr_draft,
    )
    rest = [ctx.add_label("delivered-label", LABEL_DELIVERED), *ctx.unblock()]
    await ctx.pushed()  # failing checks on this commit start a repair round
    await ctx.begin(pull, ctx.comment("pr-comment"), *rest)
    number = await _pr_number(ctx, pull)
    await ctx.set_pr_number(number)
    await ctx.perform(ctx.comment("pr-comment", f"Opened pull request #{number} for this issue."))
    for effect in rest:
        await ctx.perform(effect)


async def on_compound_complete(ctx: HookContext) -> None:
    """Optionally a small PR with the lessons; one summary comment; label `agent-done`."""
    lessons_branch = ctx.run.artifacts.get("branch")
    summary = neutralise(ctx.run.result_text or "") or "Lessons recorded."
    rest = [ctx.add_label("done-label", LABEL_DONE), *ctx.unblock()]
    link = ""
    if lessons_branch:
        pull = ctx.open_pr(
            "lessons-pr",
            head=lessons_branch,
            title=f"Lessons from #{ctx.task.issue_number}",
            body=f"Lessons learned while delivering #{ctx.task.issue_number}.",
        )
        await ctx.begin(pull, ctx.comment("summary-comment"), *rest)
        link = f"\n\nThe lessons are in pull request #{await _pr_number(ctx, pull)}."
    await ctx.perform_all(
        ctx.comment("summary-comment", f"## What we learned\n\n{summary}{link}"), *rest
    )


async def on_revise_complete(ctx: HookContext) -> None:
    """One reply in each thread of the review (what changed there, or why not), and one
    summary comment on the pull request."""
    work, number = _round_of(ctx)
    sha = await ctx.pushed()
    pushed = f"Pushed {sha[:7]}." if sha else "Nothing needed pushing."
    default = f"Addressed in {sha[:7]}." if sha else "No change was needed here."
    replies = [
        ctx.reply(f"reply-{comment_id}", comment_id, _reply_text(ctx, comment_id, default))
        for comment_id in _threads(work)
    ]
    summary = neutralise(ctx.run.result_text or "") or "Revised as asked."
    comment = ctx.pr_comment("round-summary", f"## Review round {number}\n\n{summary}\n\n{pushed}")
    await ctx.begin(*replies, comment)
    for reply in replies:
        # A thread GitHub will not take a reply in (deleted, or not a thread's first
        # comment) loses that reply (recorded `refused`, never resent), not the round.
        with contextlib.suppress(EffectRefused):
            await ctx.perform(reply)
    await ctx.perform(comment)


async def on_repair_complete(ctx: HookContext) -> None:
    """One summary comment on the pull request: what failed, what was done."""
    work, number = _round_of(ctx)
    sha = await ctx.pushed()
    failed = ", ".join(sorted({c.name for c in work.checks})) or "the checks"
    pushed = f"Pushed {sha[:7]}; the checks run again on it." if sha else "Nothing was pushed."
    summary = neutralise(ctx.run.result_text or "") or "Repaired."
    body = f"## CI repair round {number}\n\n{neutralise(failed)} failed.\n\n{summary}\n\n{pushed}"
    await ctx.perform_all(ctx.pr_comment("round-summary", body))


def _round_of(ctx: HookContext) -> tuple[RoundWork, int]:
    if ctx.round is None:  # pragma: no cover - the runner passes a round phase its round
        raise AssertionError(f"{ctx.run.phase} attempt {ctx.run.attempt} without its round")
    return ctx.round.work, ctx.round.number


def _threads(work: RoundWork) -> list[int]:
    """The review threads a revise round answers: each comment of the review that starts
    one, or the thread of the `/agent …` review comment that asked."""
    ids = [c.id for c in work.threads]
    if work.trigger.thread_id is not None and not ids:
        ids.append(work.trigger.thread_id)
    return ids


def _reply_text(ctx: HookContext, comment_id: int, default: str) -> str:
    """The agent's reply for one thread (artifact `reply:<id>`), neutralised."""
    return neutralise(ctx.run.artifacts.get(f"reply:{comment_id}", "")) or default


def _pr_title(task: Task) -> str:
    """The PR title, "<issue title> (#N)", within GitHub's 256 characters: the number stays."""
    suffix = f" (#{task.issue_number})"
    title = cap_title(neutralise(task.title or "")) or "Agent change"
    room = TITLE_LIMIT - len(suffix)
    if len(title) > room:
        title = title[: room - 1].rstrip() + "…"
    return title + suffix


async def _pr_number(ctx: HookContext, pull: Effect) -> int:
    number = await ctx.perform(pull)
    if number is None:  # pragma: no cover - the ledger always returns a PR number
        raise AssertionError(f"effect {pull.key} recorded no pull request number")
    return int(number)


def correlation_id(run: PhaseRun) -> str:
    """The id a public comment carries and the logs are keyed by: run id and attempt."""
    return f"run-{run.id}.{run.attempt}"


def reason_class(run: PhaseRun) -> str:
    """The public class of why a run is blocked or failed (never the raw reason).

    Reasons we write ourselves about limits and about the repository (a turn or budget
    limit, workflow files, files conflicting with the base) name no internal detail and
    are what a person needs to act: those are published, neutralised."""
    raw = (run.blocked_reason or "").strip().splitlines()
    reason = raw[0].lower() if raw else ""
    if reason.startswith(REFUSED_PREFIX):
        return "GitHub refused an update"
    if _PUBLIC_REASON.match(reason):
        return cap_title(neutralise(raw[0]))
    if "budget exhausted" in reason:
        return "budget exhausted"
    if run.status is PhaseStatus.FAILED:
        return "the agent kept failing"
    return "the agent reported it is blocked"


async def on_phase_blocked(ctx: HookContext) -> None:
    """One `agent-blocked` comment for this attempt (reason class and correlation id, never
    the raw reason); label `agent-blocked`."""
    run = ctx.run
    verb = "failed" if run.status is PhaseStatus.FAILED else "is blocked"
    reason = (
        f"Reason: {reason_class(run)}. Reference: `{correlation_id(run)}` (the details "
        "are in the service's logs)."
    )
    if run.phase.is_round:  # said on the pull request; the next review or command starts anew
        number = ctx.round.number if ctx.round is not None else run.attempt
        comment = ctx.pr_comment(
            "blocked-comment",
            f"**agent-blocked**: {run.phase} round {number} {verb}.\n\n{reason}\n\n"
            "A new review, or a comment starting with `/agent`, starts another round.",
        )
    else:
        comment = ctx.comment(
            "blocked-comment",
            f"**agent-blocked**: the {run.phase} phase {verb} (attempt {run.attempt}).\n\n"
            f"{reason}\n\nComment `/retry` to start a new attempt.",
        )
    await ctx.perform_all(comment, ctx.add_label("blocked-label", LABEL_BLOCKED))


def progress_ending(run: PhaseRun, round_: Round | None, pr_number: int | None) -> str:
    """The last progress edit's line: how the attempt ended, and where its result is."""
    if run.status is not PhaseStatus.COMPLETE:
        verb = "Failed" if run.status is PhaseStatus.FAILED else "Blocked"
        return f"⛔ {verb}: {reason_class(run)}. See the comment below."
    sha = run.artifacts.get("head_sha", "")
    pushed = f" Pushed {sha[:7]}." if sha else ""
    match run.phase:
        case Phase.PLAN:
            return "✅ Done: the plan is in the comment below."
        case Phase.DELIVER:
            opened = f"opened pull request #{pr_number}" if pr_number else "delivered"
            return f"✅ Done: {opened}."
        case Phase.COMPOUND:
            return "✅ Done: the lessons are in the comment below."
        case Phase.REVISE | Phase.REPAIR:
            number = round_.number if round_ is not None else run.attempt
            return f"✅ Done: round {number}, summary below.{pushed}"
        case phase:  # pragma: no cover - a new phase without an ending is a loud bug
            raise AssertionError(f"no progress ending for {phase}")


async def run_hooks(ctx: HookContext) -> None:
    """Dispatch to the hook for this run's final state."""
    match ctx.run.status, ctx.run.phase:
        case PhaseStatus.COMPLETE, Phase.PLAN:
            await on_plan_complete(ctx)
        case PhaseStatus.COMPLETE, Phase.DELIVER:
            await on_deliver_complete(ctx)
        case PhaseStatus.COMPLETE, Phase.COMPOUND:
            await on_compound_complete(ctx)
        case PhaseStatus.COMPLETE, Phase.REVISE:
            await on_revise_complete(ctx)
        case PhaseStatus.COMPLETE, Phase.REPAIR:
            await on_repair_complete(ctx)
        case ((PhaseStatus.BLOCKED | PhaseStatus.FAILED), _):
            await on_phase_blocked(ctx)
        case status, phase:  # pragma: no cover - a non-final run has no hooks
            raise AssertionError(f"no hooks for {phase} in state {status}")
