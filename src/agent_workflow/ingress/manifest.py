"""The GitHub App manifest `aw app manifest` prints: what the App may do and which
events it receives, for one-click registration (GitHub's "Register a GitHub App from a
manifest" flow: POST it as the `manifest` form field to
`https://github.com/settings/apps/new`, or `…/organizations/<org>/settings/apps/new`).

`installation` and `installation_repositories` are not listed: GitHub sends them to
every App and refuses them in `default_events`.
"""

from __future__ import annotations

from typing import Any

#: The events the ingress parses (`ingress.events.parse`): each starts or moves a phase.
DEFAULT_EVENTS = (
    "issues",
    "issue_comment",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "check_suite",
    "check_run",
    "workflow_run",
    # Not work: a push to the default branch touching `.github/agent-workflow.yml` drops
    # the cached repository configuration (`create_app(on_push=...)`).
    "push",
)

#: What the App's installation tokens need, and no more: comments and labels (issues),
#: pull requests and review replies, pushes (contents), reading checks and workflow
#: runs (repair rounds), reading collaborators' permissions (metadata).
DEFAULT_PERMISSIONS = {
    "issues": "write",
    "pull_requests": "write",
    "contents": "write",
    "checks": "read",
    "actions": "read",
    "metadata": "read",
}


def app_manifest(
    *, name: str, url: str, webhook_url: str, redirect_url: str | None = None
) -> dict[str, Any]:
    """The manifest as GitHub documents it (private App, webhook active)."""
    manifest: dict[str, Any] = {
        "name": name,
        "url": url,
        "hook_attributes": {"url": webhook_url, "active": True},
        "public": False,
        "default_permissions": dict(DEFAULT_PERMISSIONS),
        "default_events": list(DEFAULT_EVENTS),
    }
    if redirect_url is not None:
        manifest["redirect_url"] = redirect_url
    return manifest
