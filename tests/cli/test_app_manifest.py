"""`aw app manifest`: the GitHub App manifest as JSON, subscribed to exactly the events the
ingress handles (and none GitHub refuses in a manifest: installation events are sent to
every App unasked)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from agent_workflow.cli import app
from agent_workflow.core.errors import BadEvent
from agent_workflow.ingress.events import Ignored, parse
from tests.ingress.helpers import TRIGGERS

#: One action per event that the ingress turns into work (`ingress.events.parse`).
HANDLED = {
    "issues": "labeled",
    "issue_comment": "created",
    "pull_request": "closed",
    "pull_request_review": "submitted",
    "pull_request_review_comment": "created",
    "check_suite": "completed",
    "check_run": "completed",
    "workflow_run": "completed",
}


def test_app_manifest__valid_json_with_the_events_the_ingress_handles() -> None:
    url = "https://aw.example.com/webhooks/github"
    result = CliRunner().invoke(app, ["app", "manifest", "--webhook-url", url])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.output)
    assert manifest["hook_attributes"] == {"url": url, "active": True}
    assert manifest["public"] is False
    # The events that start work, and `push` (it refreshes a repository's configuration).
    assert set(manifest["default_events"]) == {*HANDLED, "push"}
    assert not {"installation", "installation_repositories"} & set(manifest["default_events"])
    for name in HANDLED:  # each one reaches a parser, not "not handled"
        try:
            outcome = parse(name, {"action": HANDLED[name]}, "d", TRIGGERS)
        except BadEvent:  # the parser wanted the fields of a real payload
            continue
        assert not (isinstance(outcome, Ignored) and "is not handled" in outcome.reason)
    permissions = manifest["default_permissions"]
    for scope in ("issues", "pull_requests", "contents"):
        assert permissions[scope] == "write"
    assert permissions["checks"] == "read"
    assert permissions["metadata"] == "read"
