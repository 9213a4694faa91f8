"""Payload builders and a recording `on_accepted` for the ingress tests."""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from agent_workflow.ingress import Triggers, sign

SECRET = "ingress-test-secret"
# The README's vocabulary (Settings' defaults), spelled out: these tests send those words.
TRIGGERS = Triggers(
    plan_label="agent",
    approve_label="agent-approved",
    plan_command="/agent plan",
    approve_command="/approve",
    retry_command="/retry",
)
REPO = "octo/demo"
_ids = itertools.count(1)


def delivery_id() -> str:
    """A fresh delivery id, GUID-like as GitHub's."""
    return f"0000{next(_ids):04d}-aaaa-bbbb-cccc-ddddeeeeffff"


def _envelope(action: str, *, sender: str = "alice", sender_type: str = "User") -> dict[str, Any]:
    return {
        "action": action,
        "repository": {
            "full_name": REPO,
            "name": "demo",
            "clone_url": f"https://github.com/{REPO}.git",
            "default_branch": "trunk",
        },
        "sender": {"login": sender, "type": sender_type},
    }


def issue(number: int = 7, *, body: str | None = "It breaks.", pr: bool = False) -> dict[str, Any]:
    """An issue object; with `pr=True`, the issue half of a pull request."""
    value: dict[str, Any] = {"number": number, "title": f"Issue {number}", "body": body}
    if pr:
        value["pull_request"] = {"url": f"https://api.github.com/repos/{REPO}/pulls/{number}"}
    return value


def labeled(label: str, *, number: int = 7, **sender: Any) -> dict[str, Any]:
    """`issues` / `labeled`."""
    return {**_envelope("labeled", **sender), "issue": issue(number), "label": {"name": label}}


def commented(body: str, *, number: int = 7, pr: bool = False, **sender: Any) -> dict[str, Any]:
    """`issue_comment` / `created`."""
    return {
        **_envelope("created", **sender),
        "issue": issue(number, pr=pr),
        "comment": {"id": 99, "body": body},
    }


def pr_closed(
    ref: str = "agent/issue-7", *, merged: bool = True, number: int = 12, head_repo: str = REPO
) -> dict[str, Any]:
    """`pull_request` / `closed`."""
    return {
        **_envelope("closed"),
        "pull_request": {
            "number": number,
            "merged": merged,
            "head": {"ref": ref, "repo": {"full_name": head_repo}},
        },
    }


def signed_headers(
    body: bytes, event: str, delivery: str, *, hook_id: str = "42", secret: str = SECRET
) -> dict[str, str]:
    """Headers as GitHub sends them, signed with `secret`."""
    return {
        "content-type": "application/json",
        "x-github-event": event,
        "x-github-delivery": delivery,
        "x-github-hook-id": hook_id,
        "x-hub-signature-256": sign(secret, body),
    }


def encode(payload: dict[str, Any]) -> bytes:
    """Compact JSON, as GitHub sends it."""
    return json.dumps(payload, separators=(",", ":")).encode()


@dataclass
class Dispatched:
    """An `on_accepted` that records its calls; it can be told to fail or hang."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    error: Exception | None = None
    hang: bool = False

    async def __call__(self, delivery_id: str, hook_id: str) -> None:
        self.calls.append((delivery_id, hook_id))
        if self.hang:
            await asyncio.Event().wait()
        if self.error is not None:
            raise self.error
