"""Webhook events the state emits, built as GitHub shapes its payloads.

Every mutation returns the events GitHub would send for it, whoever acted:
the bot's own comments and labels come back as webhooks too, and a router
must recognise and ignore them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from github_emulator.model import Comment, Issue, Label, Repo, User
from github_emulator.render import JSON, Renderer


@dataclass(frozen=True)
class Event:
    """One webhook to send: `X-GitHub-Event` name plus the JSON payload."""

    name: str
    payload: JSON

    @property
    def action(self) -> str:
        """The payload's `action` ("" for events without one)."""
        action: Any = self.payload.get("action", "")
        return str(action)


class EventFactory:
    """Builds payloads with the repository, sender and (for Apps) installation blocks."""

    def __init__(self, render: Renderer, installation_id: int | None = None) -> None:
        self.render = render
        self.installation_id = installation_id

    def _envelope(self, action: str, repo: Repo, sender: User) -> JSON:
        payload: JSON = {
            "action": action,
            "repository": self.render.repo(repo),
            "sender": self.render.user(sender),
        }
        if self.installation_id is not None:
            payload["installation"] = {
                "id": self.installation_id,
                "node_id": f"MDIz_{self.installation_id}",
            }
        return payload

    def issues(
        self, action: str, repo: Repo, issue: Issue, sender: User, label: Label | None = None
    ) -> Event:
        """`issues` event: opened, closed, labeled, unlabeled."""
        payload = self._envelope(action, repo, sender)
        payload["issue"] = self.render.issue(repo, issue)
        if label is not None:
            payload["label"] = self.render.label(repo, label)
        return Event("issues", payload)

    def issue_comment(self, repo: Repo, issue: Issue, comment: Comment, sender: User) -> Event:
        """`issue_comment` event with action `created`."""
        payload = self._envelope("created", repo, sender)
        payload["issue"] = self.render.issue(repo, issue)
        payload["comment"] = self.render.comment(repo, comment)
        return Event("issue_comment", payload)

    def pull_request(
        self, action: str, repo: Repo, issue: Issue, sender: User, label: Label | None = None
    ) -> Event:
        """`pull_request` event: opened, closed (with `merged`), labeled, unlabeled."""
        payload = self._envelope(action, repo, sender)
        payload["number"] = issue.number
        payload["pull_request"] = self.render.pull(repo, issue)
        if label is not None:
            payload["label"] = self.render.label(repo, label)
        return Event("pull_request", payload)

    def labeled(self, action: str, repo: Repo, issue: Issue, sender: User, label: Label) -> Event:
        """`issues` or `pull_request` (un)labeled, depending on what carries the label."""
        if issue.pull is not None:
            return self.pull_request(action, repo, issue, sender, label)
        return self.issues(action, repo, issue, sender, label)
