"""Phase hooks: the keyed effects each outcome produces, computed from durable state.

Each hook is a short sequence of `ledger.perform` calls. Calling a hook again
after a crash performs only what is outstanding: finished effects are `done`
in the ledger and cost no forge call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agent_workflow.core.effects import Effect, EffectKind, effect_key
from agent_workflow.core.ledger import Ledger, Scope
from agent_workflow.core.model import Phase, PhaseRun, PhaseStatus, Task

LABEL_PLANNED = "agent-planned"
LABEL_DELIVERED = "agent-delivered"
LABEL_DONE = "agent-done"
LABEL_BLOCKED = "agent-blocked"


@dataclass(frozen=True)
class HookContext:
    """What a hook may use: the task, the finished run, and the ledger bound to its fence."""

    task: Task
    run: PhaseRun
    ledger: Ledger
    scope: Scope
    set_pr_number: Callable[[int], Awaitable[None]]

    def key(self, name: str) -> str:
        """The deterministic effect key for `name` in this run's attempt."""
        return effect_key(
            self.task.repo, self.task.issue_number, self.run.phase, self.run.attempt, name
        )

    async def comment(self, name: str, body: str) -> str | None:
        """Post a comment (with the hidden marker) exactly once."""
        return await self.ledger.perform(
            Effect(
                self.key(name),
                EffectKind.COMMENT,
                self.task.repo,
                self.task.issue_number,
                body=body,
            ),
            self.scope,
        )

    async def add_label(self, name: str, label: str) -> None:
        """Add a label exactly once."""
        effect = Effect(
            self.key(name),
            EffectKind.ADD_LABELS,
            self.task.repo,
            self.task.issue_number,
            labels=(label,),
        )
        await self.ledger.perform(effect, self.scope)

    async def remove_label(self, name: str, label: str) -> None:
        """Remove a label exactly once (absent counts as removed)."""
        effect = Effect(
            self.key(name),
            EffectKind.REMOVE_LABEL,
            self.task.repo,
            self.task.issue_number,
            labels=(label,),
        )
        await self.ledger.perform(effect, self.scope)

    async def open_pr(self, name: str, *, head: str, title: str, body: str) -> int:
        """Open (or adopt) the pull request for `head` exactly once; returns its number."""
        effect = Effect(
            self.key(name),
            EffectKind.OPEN_PR,
            self.task.repo,
            self.task.issue_number,
            body=body,
            head=head,
            base=self.task.default_branch,
            title=title,
        )
        number = await self.ledger.perform(effect, self.scope)
        if number is None:  # pragma: no cover - the ledger always returns a PR number
            raise AssertionError(f"effect {effect.key} recorded no pull request number")
        return int(number)

    async def clear_blocked_label(self) -> None:
        """After a retry succeeds, take `agent-blocked` off (only then: it costs a call)."""
        if self.run.attempt > 1:
            await self.remove_label("unblocked", LABEL_BLOCKED)


async def on_plan_complete(ctx: HookContext) -> None:
    """One plan comment; label `agent-planned`."""
    plan = ctx.run.result_text or "(the agent returned an empty plan)"
    await ctx.comment(
        "plan-comment",
        f"## Implementation plan\n\n{plan}\n\nComment `/approve` to have the agent implement it.",
    )
    await ctx.add_label("planned-label", LABEL_PLANNED)
    await ctx.clear_blocked_label()


async def on_deliver_complete(ctx: HookContext) -> None:
    """One pull request ("Closes #N"), one comment linking it; label `agent-delivered`."""
    task = ctx.task
    head = ctx.run.artifacts.get("branch", task.branch)
    summary = ctx.run.result_text or ""
    number = await ctx.open_pr(
        "pull-request",
        head=head,
        title=f"{task.title or 'Agent change'} (#{task.issue_number})",
        body=f"Closes #{task.issue_number}\n\n{summary}",
    )
    await ctx.set_pr_number(number)
    await ctx.comment("pr-comment", f"Opened pull request #{number} for this issue.")
    await ctx.add_label("delivered-label", LABEL_DELIVERED)
    await ctx.clear_blocked_label()


async def on_compound_complete(ctx: HookContext) -> None:
    """Optionally a small PR with the lessons; one summary comment; label `agent-done`."""
    lessons_branch = ctx.run.artifacts.get("branch")
    link = ""
    if lessons_branch:
        number = await ctx.open_pr(
            "lessons-pr",
            head=lessons_branch,
            title=f"Lessons from #{ctx.task.issue_number}",
            body=f"Lessons learned while delivering #{ctx.task.issue_number}.",
        )
        link = f"\n\nThe lessons are in pull request #{number}."
    summary = ctx.run.result_text or "Lessons recorded."
    await ctx.comment("summary-comment", f"## What we learned\n\n{summary}{link}")
    await ctx.add_label("done-label", LABEL_DONE)
    await ctx.clear_blocked_label()


async def on_phase_blocked(ctx: HookContext) -> None:
    """One `agent-blocked` comment for this attempt, with the reason; label `agent-blocked`."""
    reason = ctx.run.blocked_reason or "no reason given"
    verb = "failed" if ctx.run.status is PhaseStatus.FAILED else "is blocked"
    await ctx.comment(
        "blocked-comment",
        f"**agent-blocked**: the {ctx.run.phase} phase {verb} (attempt {ctx.run.attempt}).\n\n"
        f"Reason: {reason}\n\nComment `/retry` to start a new attempt.",
    )
    await ctx.add_label("blocked-label", LABEL_BLOCKED)


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
