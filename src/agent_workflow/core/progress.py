"""Live progress: one comment per phase attempt, edited in place while the agent works.

- The comment is posted when the attempt's agent starts, as a keyed effect of its own
  (`PROGRESS_EFFECT`, per task/phase/attempt) through the ledger: a takeover of the same
  attempt adopts the same comment (its `done` row, or its marker when the post was
  uncertain), a new attempt gets a new one (G3). It goes where the attempt's other
  comments go: the issue, or the pull request for a round.
- Edits are not effects: each carries the whole state, so a lost one is superseded by
  the next. They are fenced like every mutation: `Ledger.edit` checks the lease right
  before sending (a worker past its lease never edits, G5), and the runner checks the
  fence in the database before the last edit.
- The agent reports through `report_progress` (a contextvar the runner sets for the run,
  as `watching` does for the lease): the `Agent` protocol does not change, and an agent
  run outside a runner reports to nobody. The `Reporter` throttles to one edit per
  interval and sends on its own tasks, so a slow GitHub never slows the agent.
- Everything the agent provides (checklist, current activity) is neutralised (DESIGN §9).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace

import structlog

from agent_workflow.core.effects import Effect, EffectKind, effect_key
from agent_workflow.core.errors import LeaseLost
from agent_workflow.core.ledger import Ledger, Scope
from agent_workflow.core.model import Phase, PhaseRun, Task
from agent_workflow.core.neutralise import neutralise
from agent_workflow.core.ports import Clock

log = structlog.get_logger(__name__)

PROGRESS_EFFECT = "progress"
"""The effect name of an attempt's progress comment."""
MAX_STEPS = 30  # a checklist longer than this is cut ("… and N more"): a comment, not a log
STEP_CHARS = 160  # one line per step; longer agent text is cut
DOING_CHARS = 160
_PLAN_STEP = re.compile(r"^\s*\d+[.)]\s+(\S.*)$")


@dataclass(frozen=True)
class Step:
    """One checklist item: done, being done now (`active`), or still to do."""

    text: str
    done: bool = False
    active: bool = False


@dataclass(frozen=True)
class Progress:
    """What the agent reports: its checklist, what it does now, turns and cost so far."""

    checklist: tuple[Step, ...] = ()
    doing: str = ""
    turns: int = 0
    cost_usd: float = 0.0


def plan_steps(plan: str) -> tuple[Step, ...]:
    """The numbered steps of a plan (`1. …`), the checklist of a deliver without its own."""
    return tuple(Step(m.group(1)) for line in plan.splitlines() if (m := _PLAN_STEP.match(line)))


def _line(text: str, limit: int) -> str:
    one = " ".join(neutralise(text).split())
    return one if len(one) <= limit else one[: limit - 1].rstrip() + "…"


def _elapsed(seconds: float) -> str:
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def render(
    progress: Progress,
    *,
    title: str,
    elapsed_s: float | None,
    fallback: tuple[Step, ...] = (),
    ended: str | None = None,
) -> str:
    """The comment's text: heading, state line, checklist, figures. `ended`: the last edit's
    line saying how the attempt ended (and where its result is)."""
    lines = [f"### Agent progress: {title}", ""]
    if ended is not None:
        lines.append(ended)
    else:
        doing = _line(progress.doing, DOING_CHARS)
        lines.append(f"⏳ Working{': ' + doing if doing else '…'}")
    steps = progress.checklist or fallback
    if steps:
        lines.append("")
        for step in steps[:MAX_STEPS]:
            text = _line(step.text, STEP_CHARS)
            mark = "✅" if step.done else ("▶️" if step.active and ended is None else "⬜")
            lines.append(f"- {mark} {f'**{text}**' if step.active and ended is None else text}")
        if len(steps) > MAX_STEPS:
            lines.append(f"- … and {len(steps) - MAX_STEPS} more")
    figures = [f"{progress.turns} turns", f"${progress.cost_usd:.2f}"]
    if elapsed_s is not None:
        figures.append(_elapsed(elapsed_s))
    lines += ["", f"<sub>{' · '.join(figures)}</sub>"]
    return "\n".join(lines)


def progress_effect(task: Task, phase: Phase, attempt: int, body: str = "") -> Effect:
    """The attempt's progress comment: on the issue, or on the pull request for a round."""
    target = task.pr_number if phase.is_round and task.pr_number is not None else None
    return Effect(
        effect_key(task.effect_repo, task.issue_number, phase, attempt, PROGRESS_EFFECT),
        EffectKind.COMMENT,
        task.repo,
        target if target is not None else task.issue_number,
        body=body,
    )


class Reporter:
    """The progress comment of one agent run: posts (or adopts) it, edits it, throttled."""

    def __init__(
        self,
        ledger: Ledger,
        clock: Clock,
        interval_s: float,
        task: Task,
        run: PhaseRun,
        keep: Callable[[str], Awaitable[object]] | None = None,
    ) -> None:
        self._ledger = ledger
        self._keep = keep  # the text is also kept with the phase run (the dashboard's)
        self._clock = clock
        self._interval = interval_s
        self._effect = progress_effect(task, run.phase, run.attempt)
        self._scope = Scope(task.id, run.phase.value, run.attempt, run.guard)
        self._title = f"{run.phase} (attempt {run.attempt})"
        self._fallback = plan_steps(run.plan_text) if run.phase is Phase.DELIVER else ()
        self.latest = Progress()
        self.started_at: float | None = None
        self._comment_id: str | None = None
        self._sent_at = 0.0
        self._dirty = False
        self._stopped = False
        self._sending: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None

    # -- the agent's run ---------------------------------------------------------------

    def open(self) -> None:
        """The agent starts: post (or adopt) the comment, on a task of its own."""
        self.started_at = self._sent_at = self._clock()
        self._sending = asyncio.create_task(self._post())
        self._ticker = asyncio.create_task(self._tick())

    def report(self, progress: Progress) -> None:
        """The agent's latest state; sent when the interval allows (never awaited)."""
        self.latest = progress
        self._dirty = True
        self._kick()

    async def close(self, *, wait: bool) -> None:
        """The agent's run is over: no more edits from it. `wait`: let the one in flight
        land (in order before the last edit); else (cancelled) cancel it."""
        self._stopped = True
        tasks = [t for t in (self._ticker, self._sending) if t is not None]
        if self._ticker is not None:
            self._ticker.cancel()
        if not wait and self._sending is not None:
            self._sending.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _kick(self) -> None:
        if self._stopped or not self._dirty or self._comment_id is None:
            return
        if self._sending is not None and not self._sending.done():
            return  # one edit at a time: the next carries whatever changed meanwhile
        if self._clock() < self._sent_at + self._interval:
            return  # throttled: the ticker (or the next report) sends it
        self._dirty = False
        self._sent_at = self._clock()
        self._sending = asyncio.create_task(self._edit(self._body()))
        self._sending.add_done_callback(lambda _: self._kick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(max(self._sent_at + self._interval - self._clock(), self._interval))
            self._kick()

    async def _post(self) -> None:
        body = self._body()
        await self._kept(body)
        try:
            found = await self._ledger.perform(replace(self._effect, body=body), self._scope)
        except LeaseLost:
            self._stopped = True
            log.warning("progress.lease_lost", key=self._effect.key)
            return
        except Exception:  # progress is a courtesy: the phase goes on without it
            log.exception("progress.post_failed", key=self._effect.key)
            return
        self._comment_id = found
        self._kick()

    async def _edit(self, body: str) -> None:
        await self._kept(body)
        if self._comment_id is None:  # pragma: no cover - edits start after the post
            return
        try:
            await self._ledger.edit(self._effect, self._comment_id, body)
        except LeaseLost:
            self._stopped = True  # a zombie: the new holder edits from now on
            log.warning("progress.edit_refused", key=self._effect.key, reason="lease lost")
        except Exception:  # superseded by the next edit
            log.warning("progress.edit_failed", key=self._effect.key, exc_info=True)

    async def _kept(self, body: str) -> None:
        """Keep `body` with the phase run (a courtesy, like the comment: failures are logged)."""
        if self._keep is None:
            return
        try:
            await self._keep(body)
        except Exception:
            log.warning("progress.keep_failed", key=self._effect.key, exc_info=True)

    def _body(self, ended: str | None = None) -> str:
        now = self._clock()
        elapsed = None if self.started_at is None else now - self.started_at
        return render(
            self.latest, title=self._title, elapsed_s=elapsed, fallback=self._fallback, ended=ended
        )

    # -- after the effects -------------------------------------------------------------

    async def finish(self, run: PhaseRun, ended: str) -> None:
        """The last edit: how the attempt ended and where its result is. A worker that did
        not run the agent (it performs a dead worker's effects) finds the comment in the
        ledger; an attempt whose agent never posted one gets none."""
        self._stopped = True
        if self._comment_id is None:
            try:
                self._comment_id = await self._ledger.posted(self._effect.key)
            except Exception:
                log.warning("progress.lookup_failed", key=self._effect.key, exc_info=True)
            if self._comment_id is None:
                return
        self.latest = Progress(
            self.latest.checklist,
            turns=max(self.latest.turns, run.turns),
            cost_usd=max(self.latest.cost_usd, run.cost_usd),
        )
        await self._edit(self._body(ended))


_current: ContextVar[Callable[[Progress], None] | None] = ContextVar(
    "agent_workflow_progress", default=None
)


@contextmanager
def reporting(sink: Callable[[Progress], None] | None) -> Iterator[None]:
    """Make `sink` (a `Reporter.report`) receive the progress reported inside this block
    (and in the tasks it starts)."""
    token = _current.set(sink)
    try:
        yield
    finally:
        _current.reset(token)


def report_progress(progress: Progress) -> None:
    """Agents call this as they work; outside a runner's attempt it does nothing."""
    sink = _current.get()
    if sink is not None:
        sink(progress)
