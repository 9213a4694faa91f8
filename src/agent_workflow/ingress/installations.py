"""`installation` and `installation_repositories` events: a GitHub App's installation
suspended, unsuspended or deleted, repositories removed from it or added back.

They drive no phase: they are applied when they arrive (before the webhook is answered,
so an acknowledged one is durable) and nothing is stored in the inbox. Applying one twice
is harmless: each is a state write. A suspended or deleted installation starts nothing
(the router answers its events with the reason) and its tasks are held: the sweeper
skips them, `aw status` shows why; unsuspending releases them and their unfinished
phases are picked up again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from agent_workflow.core.errors import BadEvent
from agent_workflow.store import Store
from agent_workflow.store.installations import ACTIVE, DELETED, SUSPENDED

log = structlog.get_logger(__name__)

#: `installation` actions and the state each leaves the installation in.
_STATES = {
    "suspend": SUSPENDED,
    "unsuspend": ACTIVE,
    "deleted": DELETED,
    "created": ACTIVE,
}
#: The events this module applies (the App manifest subscribes to them).
INSTALLATION_EVENTS = ("installation", "installation_repositories")


@dataclass(frozen=True)
class InstallationChange:
    """One parsed installation event."""

    installation_id: int
    account: str
    action: str  # suspend, unsuspend, deleted, created; added, removed (repositories)
    repo_ids: tuple[int, ...] = ()


def suspended_reason(installation_id: int, state: str) -> str:
    """The hold of an installation's tasks while it is `state` (suspended, deleted)."""
    return f"installation {installation_id} is {state}"


def removed_reason(installation_id: int) -> str:
    """The hold of a repository's tasks once it is removed from the installation."""
    return f"repository removed from installation {installation_id}"


def parse_installation(event: str, payload: Mapping[str, Any]) -> InstallationChange | None:
    """The change an installation event makes; None for any other event or action.
    Raises `BadEvent` when the installation lacks its id."""
    action = payload.get("action")
    if event not in INSTALLATION_EVENTS or not isinstance(action, str):
        return None
    if event == "installation" and action not in _STATES:
        return None
    if event == "installation_repositories" and action not in ("added", "removed"):
        return None
    installation = payload.get("installation")
    ident = installation.get("id") if isinstance(installation, Mapping) else None
    if not isinstance(ident, int) or isinstance(ident, bool):
        raise BadEvent("installation.id is missing or not an integer")
    account = installation.get("account") if isinstance(installation, Mapping) else None
    login = account.get("login") if isinstance(account, Mapping) else None
    listed = payload.get(f"repositories_{action}") or ()
    repo_ids = tuple(
        int(r["id"]) for r in listed if isinstance(r, Mapping) and isinstance(r.get("id"), int)
    )
    return InstallationChange(ident, str(login or ""), action, repo_ids)


async def apply_installation(store: Store, change: InstallationChange, now: float) -> str:
    """Record the change and hold or release the tasks it concerns; returns what it did."""
    ident, tasks = change.installation_id, store.tasks
    match change.action:
        case "added" | "removed" if not change.repo_ids:
            done = "no repositories named"
        case "removed":
            held = await tasks.hold(removed_reason(ident), now, repo_ids=change.repo_ids)
            done = f"{held} task(s) held: {removed_reason(ident)}"
        case "added":
            freed = await tasks.release(removed_reason(ident), now, repo_ids=change.repo_ids)
            done = f"{freed} task(s) released"
        case action:
            state = _STATES[action]
            await store.installations.set_state(ident, state, change.account, now)
            if state == ACTIVE:
                freed = 0
                for was in (SUSPENDED, DELETED):
                    reason = suspended_reason(ident, was)
                    freed += await tasks.release(reason, now, installation_id=ident)
                done = f"installation {ident} active, {freed} task(s) released"
            else:
                reason = suspended_reason(ident, state)
                held = await tasks.hold(reason, now, installation_id=ident)
                done = f"{reason}: {held} task(s) held"
    log.info("installation.changed", installation=ident, action=change.action, result=done)
    return done
