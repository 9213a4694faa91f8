"""A deterministic agent for tests and the offline demo.

Outcome per phase is configurable; an issue body can also steer it
(`agent-test: block plan` blocks the plan's first attempt, `agent-test: error deliver`
makes deliver error once per attempt). Every call is recorded for assertions.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from dataclasses import dataclass, field

from agent_workflow.core.model import Phase
from agent_workflow.core.ports import AgentRequest, AgentResult, Outcome
from agent_workflow.core.progress import Progress, Step, report_progress


@dataclass
class ScriptedAgent:
    """Finishes each phase after `duration_s` (plus up to `jitter_s`, seeded) with a fixed result."""

    duration_s: float = 0.0
    jitter_s: float = 0.0
    seed: int = 0
    outcomes: dict[Phase, Outcome] = field(default_factory=dict)
    cost_usd: float = 0.01
    # Progress reports spread over `duration_s` (a checklist of this many steps, one more
    # done at each report), so live progress has something to show.
    progress_steps: int = 3
    calls: list[AgentRequest] = field(default_factory=list)
    _sessions: set[str] = field(default_factory=set)
    _errored: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    @property
    def fresh_starts(self) -> list[AgentRequest]:
        """Calls that started a session from scratch (G2 counts these)."""
        return [c for c in self.calls if not c.resume]

    async def _work(self, delay: float) -> None:
        """Sleep `delay`, reporting progress `progress_steps` times along the way."""
        steps = self.progress_steps
        names = [f"Scripted step {i + 1}" for i in range(steps)]
        for done in range(steps):
            checklist = tuple(
                Step(name, done=i < done, active=i == done) for i, name in enumerate(names)
            )
            report_progress(
                Progress(
                    checklist,
                    doing=names[done],
                    turns=done + 1,
                    cost_usd=self.cost_usd * done / steps,
                )
            )
            if delay:
                await asyncio.sleep(delay / steps)
        if delay and not steps:
            await asyncio.sleep(delay)

    async def run(self, request: AgentRequest) -> AgentResult:
        """Pretend to work, then report the scripted outcome."""
        self.calls.append(request)
        started = time.monotonic()
        restarted = request.resume and request.session_id not in self._sessions
        self._sessions.add(request.session_id)
        delay = self.duration_s + (self._random.uniform(0, self.jitter_s) if self.jitter_s else 0.0)
        await self._work(delay)
        steer = _steering(request.body)
        outcome = self.outcomes.get(request.phase, Outcome.SUCCESS)
        if steer.get(request.phase.value) == "block" and request.attempt == 1:
            outcome = Outcome.BLOCKED
        if steer.get(request.phase.value) == "error" and request.session_id not in self._errored:
            self._errored.add(request.session_id)
            outcome = Outcome.ERROR
        duration = time.monotonic() - started
        text = _TEXT[request.phase].format(n=request.issue_number, title=request.title)
        return AgentResult(
            outcome=outcome,
            text=text if outcome is Outcome.SUCCESS else "",
            reason={
                Outcome.BLOCKED: "the scripted agent was told to block",
                Outcome.ERROR: "the scripted agent was told to fail",
            }.get(outcome, ""),
            artifacts=_artifacts(request) if outcome is Outcome.SUCCESS else {},
            session_id=request.session_id,
            restarted=restarted,
            cost_usd=self.cost_usd,
            turns=1,
            duration_s=duration,
            terminal_reason="end_turn",
        )


_TEXT = {
    Phase.PLAN: "1. Read the code around #{n} ({title}).\n2. Change it.\n3. Add a test.",
    Phase.DELIVER: "Implemented the plan for #{n}.",
    Phase.COMPOUND: "Lesson from #{n}: keep changes small and tested.",
    Phase.REVISE: "Revised #{n} as the review asked.",
    Phase.REPAIR: "Fixed what made the checks fail for #{n}.",
}


def scripted_sha(request: AgentRequest) -> str:
    """The commit the scripted agent 'pushes' for a phase attempt (deterministic, 40 hex)."""
    seed = f"{request.task_id}:{request.phase.value}:{request.attempt}"
    return hashlib.sha1(seed.encode()).hexdigest()  # an id, not security


def _artifacts(request: AgentRequest) -> dict[str, str]:
    """What a real agent's run reports beside its text: the branch and commit it pushed,
    and for a review round one reply per thread."""
    if request.phase in (Phase.PLAN, Phase.COMPOUND):
        return {}
    artifacts = {"branch": request.branch, "head_sha": scripted_sha(request)}
    if request.round is not None:
        for comment in request.round.threads:
            artifacts[f"reply:{comment.id}"] = f"Done: {comment.body[:80]}"
    return artifacts


def _steering(body: str) -> dict[str, str]:
    """Parse `agent-test: <verb> <phase>` lines from the issue body."""
    steer: dict[str, str] = {}
    for line in body.splitlines():
        words = line.strip().split()
        if len(words) == 3 and words[0] == "agent-test:":
            steer[words[2]] = words[1]
    return steer
