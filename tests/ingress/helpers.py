"""Payload builders and a recording `on_accepted` for the ingress tests."""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
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
    revise_command="/agent",
    repair_command="/agent fix ci",
)
REPO = "octo/demo"
FIXTURES = Path(__file__).parent / "fixtures"
# The real examples' repository (tests/ingress/fixtures: @octokit/webhooks-examples).
EXAMPLE_REPO = "Codertocat/Hello-World"
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


def example(name: str) -> dict[str, Any]:
    """A fresh copy of the real example payload `<event>.<action>` (see fixtures/README.md)."""
    value: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return value


def review_submitted(
    state: str = "changes_requested", *, body: str | None = "Rename the helper.", ref: str = ""
) -> dict[str, Any]:
    """Real `pull_request_review` / `submitted` on PR #2, head `agent/issue-7` unless `ref`."""
    payload = example("pull_request_review.submitted")
    payload["review"]["state"] = state
    payload["review"]["body"] = body
    payload["pull_request"]["head"]["ref"] = ref or "agent/issue-7"
    return payload


def review_commented(body: str, *, ref: str = "") -> dict[str, Any]:
    """Real `pull_request_review_comment` / `created` on PR #2, head `agent/issue-7`."""
    payload = example("pull_request_review_comment.created")
    payload["comment"]["body"] = body
    payload["pull_request"]["head"]["ref"] = ref or "agent/issue-7"
    return payload


def pr_conversation(body: str, *, number: int = 2) -> dict[str, Any]:
    """Real `issue_comment` / `created`, made a pull request's as GitHub sends it."""
    payload = example("issue_comment.created")
    payload["comment"]["body"] = body
    issue = payload["issue"]
    issue["number"] = number
    base = f"https://github.com/{EXAMPLE_REPO}/pull/{number}"
    issue["pull_request"] = {
        "url": f"https://api.github.com/repos/{EXAMPLE_REPO}/pulls/{number}",
        "html_url": base,
        "diff_url": f"{base}.diff",
        "patch_url": f"{base}.patch",
        "merged_at": None,
    }
    return payload


def checks_completed(
    event: str, conclusion: str | None = "failure", *, branch: str | None = "agent/issue-7"
) -> dict[str, Any]:
    """Real `check_suite`, `check_run` or `workflow_run` / `completed` on `branch`.

    The listed pull request (#2) is given `branch` as its head, as GitHub lists it.
    """
    payload = example(f"{event}.completed")
    run = payload[event]
    run["conclusion"] = conclusion
    suite = run["check_suite"] if event == "check_run" else run
    suite["head_branch"] = branch
    for pull in run["pull_requests"]:
        pull["head"]["ref"] = branch
    return payload


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
