"""GitHub's JSON shapes for the emulator's records (the subset clients and routers read)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from github_emulator.model import Comment, Issue, Label, PullInfo, Repo, User

JSON = dict[str, Any]


def timestamp(moment: datetime | None) -> str | None:
    """GitHub's ISO 8601 form, `2024-05-01T12:00:00Z`."""
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Renderer:
    """Renders records with URLs under the emulator's API and web bases.

    `api_url` is filled in once the server knows its port, so URLs in
    responses and webhook payloads point back at the emulator.
    """

    def __init__(self, api_url: str = "http://127.0.0.1", web_url: str = "https://github.com"):
        self.api_url = api_url.rstrip("/")
        self.web_url = web_url.rstrip("/")

    def user(self, user: User) -> JSON:
        """A simple user object."""
        return {
            "login": user.login,
            "id": user.id,
            "node_id": f"U_{user.id}",
            "type": user.type,
            "site_admin": False,
            "url": f"{self.api_url}/users/{quote(user.login)}",
            "html_url": f"{self.web_url}/{quote(user.login)}",
        }

    def repo(self, repo: Repo) -> JSON:
        """A repository object."""
        return {
            "id": repo.id,
            "node_id": f"R_{repo.id}",
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": self.user(repo.owner),
            "private": repo.private,
            "html_url": f"{self.web_url}/{repo.full_name}",
            "url": f"{self.api_url}/repos/{repo.full_name}",
            "clone_url": repo.clone_url,
            "default_branch": repo.default_branch,
        }

    def label(self, repo: Repo, label: Label) -> JSON:
        """A label object."""
        return {
            "id": label.id,
            "node_id": f"LA_{label.id}",
            "url": f"{self.api_url}/repos/{repo.full_name}/labels/{quote(label.name, safe='')}",
            "name": label.name,
            "color": label.color,
            "default": False,
            "description": label.description,
        }

    def issue(self, repo: Repo, issue: Issue) -> JSON:
        """An issue object; a pull request's issue carries a `pull_request` link, as on GitHub."""
        kind = "pull" if issue.pull else "issues"
        body: JSON = {
            "id": issue.id,
            "node_id": f"I_{issue.id}",
            "number": issue.number,
            "title": issue.title,
            "body": issue.body,
            "state": issue.state,
            "user": self.user(issue.user),
            "labels": [self.label(repo, label) for label in issue.labels],
            "comments": len(issue.comments),
            "url": f"{self.api_url}/repos/{repo.full_name}/issues/{issue.number}",
            "html_url": f"{self.web_url}/{repo.full_name}/{kind}/{issue.number}",
            "created_at": timestamp(issue.created_at),
            "updated_at": timestamp(issue.updated_at),
            "closed_at": timestamp(issue.closed_at),
            "author_association": "NONE",
        }
        if issue.pull:
            body["pull_request"] = {
                "url": f"{self.api_url}/repos/{repo.full_name}/pulls/{issue.number}",
                "html_url": f"{self.web_url}/{repo.full_name}/pull/{issue.number}",
                "merged_at": timestamp(issue.pull.merged_at),
            }
        return body

    def comment(self, repo: Repo, comment: Comment) -> JSON:
        """An issue comment object."""
        issue_url = f"{self.api_url}/repos/{repo.full_name}/issues/{comment.issue_number}"
        return {
            "id": comment.id,
            "node_id": f"IC_{comment.id}",
            "url": f"{self.api_url}/repos/{repo.full_name}/issues/comments/{comment.id}",
            "html_url": (
                f"{self.web_url}/{repo.full_name}/issues/{comment.issue_number}"
                f"#issuecomment-{comment.id}"
            ),
            "issue_url": issue_url,
            "body": comment.body,
            "user": self.user(comment.user),
            "created_at": timestamp(comment.created_at),
            "updated_at": timestamp(comment.updated_at),
            "author_association": "NONE",
        }

    def pull_simple(self, repo: Repo, issue: Issue) -> JSON:
        """A pull request as `GET /pulls` lists it: no `merged` field, only `merged_at`."""
        assert issue.pull is not None, "not a pull request"
        pull: PullInfo = issue.pull
        return {
            "id": issue.id,
            "node_id": f"PR_{issue.id}",
            "number": issue.number,
            "state": issue.state,
            "title": issue.title,
            "body": issue.body,
            "user": self.user(issue.user),
            "labels": [self.label(repo, label) for label in issue.labels],
            "url": f"{self.api_url}/repos/{repo.full_name}/pulls/{issue.number}",
            "html_url": f"{self.web_url}/{repo.full_name}/pull/{issue.number}",
            "issue_url": f"{self.api_url}/repos/{repo.full_name}/issues/{issue.number}",
            "created_at": timestamp(issue.created_at),
            "updated_at": timestamp(issue.updated_at),
            "closed_at": timestamp(issue.closed_at),
            "merged_at": timestamp(pull.merged_at),
            "merge_commit_sha": pull.merge_sha,
            "head": {
                "label": pull.head_label,
                "ref": pull.head_ref,
                "sha": pull.head_sha,
                "user": self.user(repo.owner),
                "repo": self.repo(repo),
            },
            "base": {
                "label": f"{repo.owner.login}:{pull.base_ref}",
                "ref": pull.base_ref,
                "sha": repo.refs.get(f"refs/heads/{pull.base_ref}", ""),
                "user": self.user(repo.owner),
                "repo": self.repo(repo),
            },
            "author_association": "NONE",
        }

    def pull(self, repo: Repo, issue: Issue) -> JSON:
        """A full pull request object (`GET /pulls/{n}`, `POST /pulls`, webhooks)."""
        assert issue.pull is not None, "not a pull request"
        body = self.pull_simple(repo, issue)
        merged_by = issue.pull.merged_by
        body.update(
            merged=issue.pull.merged_at is not None,
            merged_by=None if merged_by is None else self.user(merged_by),
            mergeable=issue.state == "open",
            comments=len(issue.comments),
        )
        return body

    def ref(self, repo: Repo, ref: str, sha: str) -> JSON:
        """A git reference object."""
        return {
            "ref": ref,
            "node_id": f"REF_{repo.id}_{ref}",
            "url": f"{self.api_url}/repos/{repo.full_name}/git/{ref}",
            "object": {
                "sha": sha,
                "type": "commit",
                "url": f"{self.api_url}/repos/{repo.full_name}/git/commits/{sha}",
            },
        }
