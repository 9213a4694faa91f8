"""Webhook events the state emits, built as GitHub shapes its payloads.

Every mutation returns the events GitHub would send for it, whoever acted:
the bot's own comments and labels come back as webhooks too, and a router
must recognise and ignore them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from github_emulator.model import (
    CheckRun,
    CheckSuite,
    Comment,
    Issue,
    Label,
    Repo,
    Review,
    ReviewComment,
    User,
)
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

    def __init__(
        self, render: Renderer, installation_of: Callable[[str], int | None] | None = None
    ) -> None:
        self.render = render
        #: The App installation on a repository (`full_name`), for the `installation` block.
        self.installation_of = installation_of

    def _envelope(self, action: str, repo: Repo, sender: User) -> JSON:
        payload: JSON = {
            "action": action,
            "repository": self.render.repo(repo),
            "sender": self.render.user(sender),
        }
        installation = self.installation_of(repo.full_name) if self.installation_of else None
        if installation is not None:
            payload["installation"] = {"id": installation, "node_id": f"MDIz_{installation}"}
        return payload

    def installation(self, action: str, installation_id: int, account: User, sender: User) -> Event:
        """`installation` event (created, deleted, suspend, unsuspend), sent to the App."""
        payload: JSON = {
            "action": action,
            "installation": {
                "id": installation_id,
                "account": self.render.user(account),
                "suspended_at": None if action != "suspend" else "2024-01-01T00:00:00Z",
            },
            "sender": self.render.user(sender),
        }
        return Event("installation", payload)

    def installation_repositories(
        self, action: str, installation_id: int, account: User, repos: list[Repo], sender: User
    ) -> Event:
        """`installation_repositories` (added, removed) naming the repositories."""
        listed = [{"id": r.id, "name": r.name, "full_name": r.full_name} for r in repos]
        payload: JSON = {
            "action": action,
            "installation": {"id": installation_id, "account": self.render.user(account)},
            "repository_selection": "selected",
            "repositories_added": listed if action == "added" else [],
            "repositories_removed": listed if action == "removed" else [],
            "sender": self.render.user(sender),
        }
        return Event("installation_repositories", payload)

    def push(
        self,
        repo: Repo,
        sender: User,
        branch: str,
        shas: tuple[str, str],
        changed: dict[str, list[str]],
    ) -> Event:
        """`push` event of one commit (`shas`: before, after) that changed files, by kind
        (`added`, `modified`, `removed`)."""
        payload = self._envelope("", repo, sender)
        del payload["action"]
        before, after = shas
        commit = {"id": after, "message": "Update files", "distinct": True, **changed}
        payload.update(
            ref=f"refs/heads/{branch}",
            before=before,
            after=after,
            created=False,
            deleted=False,
            forced=False,
            commits=[commit],
            head_commit=commit,
            pusher={"name": sender.login},
        )
        return Event("push", payload)

    def issues(
        self, action: str, repo: Repo, issue: Issue, sender: User, label: Label | None = None
    ) -> Event:
        """`issues` event: opened, closed, labeled, unlabeled."""
        payload = self._envelope(action, repo, sender)
        payload["issue"] = self.render.issue(repo, issue)
        if label is not None:
            payload["label"] = self.render.label(repo, label)
        return Event("issues", payload)

    def issue_comment(
        self,
        repo: Repo,
        issue: Issue,
        comment: Comment,
        sender: User,
        action: str = "created",
        old_body: str | None = None,
    ) -> Event:
        """`issue_comment` event: `created`, or `edited` with `changes.body.from`.

        On a pull request, `issue.pull_request` is present (the comment is on its
        conversation, not on a line)."""
        payload = self._envelope(action, repo, sender)
        if old_body is not None:
            payload["changes"] = {"body": {"from": old_body}}
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

    def pull_request_review(self, repo: Repo, issue: Issue, review: Review, sender: User) -> Event:
        """`pull_request_review.submitted`; `review.state` lower case (`changes_requested`)."""
        payload = self._envelope("submitted", repo, sender)
        payload["review"] = self.render.review(repo, review, webhook=True)
        payload["pull_request"] = self.render.pull_simple(repo, issue)
        return Event("pull_request_review", payload)

    def pull_request_review_comment(
        self, repo: Repo, issue: Issue, comment: ReviewComment, sender: User
    ) -> Event:
        """`pull_request_review_comment.created` (a line comment or a reply)."""
        payload = self._envelope("created", repo, sender)
        payload["comment"] = self.render.review_comment(repo, comment)
        payload["pull_request"] = self.render.pull_simple(repo, issue)
        return Event("pull_request_review_comment", payload)

    def check_run(
        self, repo: Repo, run: CheckRun, suite: CheckSuite, pulls: list[Issue], sender: User
    ) -> Event:
        """`check_run.completed`; `check_run.check_suite` carries `head_branch`."""
        payload = self._envelope("completed", repo, sender)
        payload["check_run"] = self.render.check_run(repo, run, suite, pulls, webhook=True)
        return Event("check_run", payload)

    def repository_renamed(self, repo: Repo, sender: User, old_name: str) -> Event:
        """`repository.renamed`: `changes.repository.name.from` is the old name."""
        payload = self._envelope("renamed", repo, sender)
        payload["changes"] = {"repository": {"name": {"from": old_name}}}
        return Event("repository", payload)

    def repository_transferred(self, repo: Repo, sender: User, old_owner: User) -> Event:
        """`repository.transferred`: `changes.owner.from.user` is the old owner."""
        payload = self._envelope("transferred", repo, sender)
        payload["changes"] = {"owner": {"from": {"user": self.render.user(old_owner)}}}
        return Event("repository", payload)

    def check_suite(self, repo: Repo, suite: CheckSuite, pulls: list[Issue], sender: User) -> Event:
        """`check_suite.completed` with the suite's overall conclusion."""
        payload = self._envelope("completed", repo, sender)
        payload["check_suite"] = self.render.check_suite(repo, suite, pulls)
        return Event("check_suite", payload)
