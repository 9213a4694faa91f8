"""What a blocked comment may say of the reason: limits and repository files, never
stderr, paths or exception text."""

from __future__ import annotations

import dataclasses

import pytest

from agent_workflow.core.hooks import reason_class
from agent_workflow.core.model import Phase, PhaseRun, PhaseStatus

RUN = PhaseRun(
    id=1,
    task_id=1,
    phase=Phase.DELIVER,
    status=PhaseStatus.BLOCKED,
    attempt=1,
    fence=1,
    lease_owner=None,
    lease_until=None,
    session_id=None,
    trigger_delivery=None,
    failures=0,
    effects_done=False,
    result_text=None,
    blocked_reason=None,
)


@pytest.mark.parametrize(
    "reason",
    [
        "turn limit 8 reached",
        "budget $15.00 exhausted",
        "task budget of $20.00 reached (spent $20.13)",
        "sandbox unavailable (bubblewrap (bwrap) not found)",
        "repository: the base branch moved and conflicts with this branch in README.md",
    ],
)
def test_limits_and_repository_files_are_published(reason: str) -> None:
    assert reason_class(dataclasses.replace(RUN, blocked_reason=reason)) == reason


@pytest.mark.parametrize(
    "reason",
    [
        "workspace: git push failed: fatal: could not read from /srv/aw/ws/clone.git",
        "agent crashed: RuntimeError('token ghs_abc in /home/aw/.config')",
        "Claude CLI exited 1: Traceback (most recent call last):",
    ],
)
def test_anything_else_is_a_class(reason: str) -> None:
    published = reason_class(dataclasses.replace(RUN, blocked_reason=reason))
    assert published == "the agent reported it is blocked"
