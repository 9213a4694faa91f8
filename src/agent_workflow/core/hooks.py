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

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from agent_workflow.core.effects import Effect, EffectKind, EffectRow, effect_key
from agent_workflow.core.ledger import Ledger, Scope
from agent_workflow.core.model import Phase, PhaseRun, PhaseStatus, Task
from agent_workflow.core.neutralise import TITLE_LIMIT, cap_title, neutralise

LABEL_PLANNED = "agent-planned"
LABEL_DELIVERED = "agent-delivered"
LABEL_DONE = "agent-done"
LABEL_BLOCKED = "agent-blocked"
#: How the runner's stored reason starts when GitHub refused one of the phase's effects.
REFUSED_PREFIX = "github refused"


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
    _rows: dict[str, EffectRow] = field(default_factory=dict)

    def key(self, name: str) -> str:
        """The deterministic effect key for `name` in this run's attempt."""
        return effect_key(
            self.task.repo, self.task.issue_number, self.run.phase, self.run.attempt, name
        )

    def comment(self, name: str, body: str = "") -> Effect:
        """A comment (the hidden marker is appended when it is posted)."""
        return Effect(
            self.key(name), EffectKind.COMMENT, self.task.repo, self.task.issue_number, body=body
        )

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

    def open_pr(self, name: str, *, head: str, title: str, body: str) -> Effect:
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
        )

    def unblock(self) -> list[Effect]:
        """After a retry succeeds, take `agent-blocked` off (only then: it costs a call)."""
        return [self.remove_label("unblocked", LABEL_BLOCKED)] if self.run.attempt > 1 else []

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
    )
    rest = [ctx.add_label("delivered-label", LABEL_DELIVERED), *ctx.unblock()]
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
    """The public class of why a run is blocked or failed (never the raw reason)."""
    reason = (run.blocked_reason or "").lower()
    if reason.startswith(REFUSED_PREFIX):
        return "GitHub refused an update"
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
    await ctx.perform_all(
        ctx.comment(
            "blocked-comment",
            f"**agent-blocked**: the {run.phase} phase {verb} (attempt {run.attempt}).\n\n"
            f"Reason: {reason_class(run)}. Reference: `{correlation_id(run)}` (the details "
            "are in the service's logs).\n\nComment `/retry` to start a new attempt.",
        ),
        ctx.add_label("blocked-label", LABEL_BLOCKED),
    )


async def run_hooks(ctx: HookContext) -> None:
    """Dispatch to the hook for this run's final state."""
    match ctx.run.status, ctx.run.phase:
        case PhaseStatus.COMPLETE, Phase.PLAN:
            await on_plan_complete(ctx)
        case PhaseStatus.COMPLETE, Phase.DELIVER:
            await on_deliver_complete(ctx)
        case PhaseStatus.COMPLETE, Phase.COMPOUND:
            await on_compound_complete(ctx)
        case ((PhaseStatus.BLOCKED | PhaseStatus.FAILED), _):
            await on_phase_blocked(ctx)
        case status, phase:  # pragma: no cover - a non-final run has no hooks
            raise AssertionError(f"no hooks for {phase} in state {status}")
