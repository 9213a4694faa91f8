"""The one builder of parsed events (and the issue facts behind them) for tests.

Every test that drives the core with an `Event` builds it here, so an event in a
unit test looks exactly like one in an integration test: the same repository,
the same trusted actor, a fresh delivery id unless a test needs a duplicate.
"""

from __future__ import annotations

import itertools

from agent_workflow.core.model import Event, Intent, RoundTrigger, TaskInfo

REPO = "octo/demo"
TRUSTED = "alice"  # write permission in every test world
UNTRUSTED = "mallory"  # read permission in every test world
BOT = "agent-workflow[bot]"  # our own account: the author of every effect
BODY = "Make it better."

_deliveries = itertools.count(1)


def clone_url(repo: str = REPO) -> str:
    """Where the repository would be cloned from (the scripted agent never clones)."""
    return f"https://github.com/{repo}.git"


def event(
    intent: Intent,
    issue: int = 7,
    *,
    delivery: str | None = None,
    actor: str = TRUSTED,
    repo: str = REPO,
    pr_number: int | None = None,
    body: str = BODY,
    title: str | None = None,
    remote: str | None = None,
    round: RoundTrigger | None = None,
) -> Event:
    """A parsed event as the ingress would produce it; a new delivery id unless given.

    `remote` replaces the clone URL (tests whose agent really clones: a bare repository).
    """
    return Event(
        delivery_id=delivery or f"delivery-{next(_deliveries)}",
        intent=intent,
        repo=repo,
        issue_number=issue,
        actor=actor,
        title=f"Issue {issue}" if title is None else title,
        body=body,
        clone_url=remote or clone_url(repo),
        default_branch="main",
        pr_number=pr_number,
        round=round,
    )


def task_info(issue: int = 7, *, repo: str = REPO, body: str = BODY) -> TaskInfo:
    """The issue facts a task is created with: those of `event(..., issue)`."""
    return TaskInfo(
        repo=repo,
        issue_number=issue,
        title=f"Issue {issue}",
        body=body,
        clone_url=clone_url(repo),
        default_branch="main",
    )
