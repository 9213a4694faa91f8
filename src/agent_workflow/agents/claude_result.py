"""Turning what the Claude Code CLI reported into an `AgentResult`.

The CLI ends every run with a `result` message. Its `is_error` is what tells
success from failure (an API error can come with subtype "success"); the
subtype and `terminal_reason` say why a run stopped. Observed on the pinned CLI:

    subtype                is_error  terminal_reason    → Outcome
    success                false     completed          SUCCESS (or BLOCKED: first line "BLOCKED: ...")
    error_max_turns        true      max_turns          BLOCKED "turn limit N reached"
    error_max_budget_usd   true      budget_exhausted   BLOCKED "budget $X exhausted"
    success                true      api_error          ERROR (result holds "API Error: ...")
    error_during_execution true      ...                ERROR
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from claude_agent_sdk import ResultMessage

from agent_workflow.agents.blocked import blocked_reason
from agent_workflow.agents.claude_progress import StreamProgress
from agent_workflow.core.ports import AgentResult, Outcome

# Lines of the CLI's stderr kept to explain a failure.
STDERR_TAIL = 20


@dataclass(frozen=True)
class Budget:
    """The limits one run was started with, to name the one that ran out."""

    max_turns: int | None
    max_budget_usd: float | None
    task_bound: bool  # the task's remaining cap, not the phase budget, set max_budget_usd


@dataclass
class RunLog:
    """What one CLI run produced, collected while streaming its messages."""

    session_id: str
    result: ResultMessage | None = None
    last_text: str = ""  # text of the last assistant message that had any
    error: str = ""  # the SDK error, when the run failed without a result
    stderr: deque[str] = field(default_factory=lambda: deque(maxlen=STDERR_TAIL))
    progress: StreamProgress = field(default_factory=StreamProgress)  # live progress so far

    def failure(self) -> str:
        """A one-paragraph explanation of a failure, from whatever is known."""
        parts = [self.error] if self.error else []
        if self.result is not None:
            parts += [*(self.result.errors or []), self.result.result or ""]
        parts += list(self.stderr)[-3:]
        return " | ".join(p.strip() for p in parts if p and p.strip()) or "the CLI failed"


def _budget_reason(budget: Budget) -> str:
    amount = f"${budget.max_budget_usd:.2f}" if budget.max_budget_usd is not None else "the budget"
    if budget.task_bound:
        return f"task budget exhausted ({amount} was left for this run)"
    return f"budget {amount} exhausted"


def _outcome(log: RunLog, budget: Budget) -> tuple[Outcome, str, str]:
    """(outcome, reason, text) of a run."""
    res = log.result
    if res is None:
        return Outcome.ERROR, log.failure(), ""
    text = res.result if res.result is not None else log.last_text
    if res.subtype == "error_max_turns" or res.terminal_reason == "max_turns":
        return Outcome.BLOCKED, f"turn limit {budget.max_turns} reached", text or ""
    if res.subtype == "error_max_budget_usd" or res.terminal_reason == "budget_exhausted":
        return Outcome.BLOCKED, _budget_reason(budget), text or ""
    if res.is_error or res.subtype != "success":
        return Outcome.ERROR, log.failure(), text or ""
    reason = blocked_reason(text or "")
    if reason is not None:
        return Outcome.BLOCKED, reason, text or ""
    return Outcome.SUCCESS, "", text or ""


def to_result(
    log: RunLog, budget: Budget, *, restarted: bool, prior_usd: float = 0.0
) -> AgentResult:
    """The `AgentResult` of a finished (or failed) CLI run.

    `prior_usd` is the session's cost before this run (resumed sessions), which
    the CLI's total includes and this run's cost does not.
    """
    outcome, reason, text = _outcome(log, budget)
    res = log.result
    return AgentResult(
        outcome=outcome,
        text=text,
        reason=reason,
        session_id=(res.session_id if res is not None and res.session_id else log.session_id),
        restarted=restarted,
        cost_usd=max(0.0, (res.total_cost_usd or 0.0) - prior_usd) if res is not None else 0.0,
        turns=res.num_turns if res is not None else 0,
        duration_s=(res.duration_ms / 1000.0) if res is not None else 0.0,
        terminal_reason=(
            (res.terminal_reason or res.subtype) if res is not None else "process_failed"
        ),
    )
