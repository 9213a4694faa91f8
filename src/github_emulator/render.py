"""GitHub's JSON shapes for the emulator's records (the subset clients and routers read)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from github_emulator.model import (
    Annotation,
    CheckRun,
    CheckSuite,
    Comment,
    Issue,
    Label,
    PullInfo,
    Repo,
    Review,
    ReviewComment,
    User,
)

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
            "draft": issue.pull.draft,
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

    # -- reviews ---------------------------------------------------------------------------

    def review(self, repo: Repo, review: Review, *, webhook: bool = False) -> JSON:
        """A pull request review; `state` is upper case in REST, lower case in webhooks."""
        pull_url = f"{self.api_url}/repos/{repo.full_name}/pulls/{review.pull_number}"
        html_url = (
            f"{self.web_url}/{repo.full_name}/pull/{review.pull_number}"
            f"#pullrequestreview-{review.id}"
        )
        return {
            "id": review.id,
            "node_id": f"PRR_{review.id}",
            "user": self.user(review.user),
            "body": review.body or (None if webhook else ""),
            "state": review.state.lower() if webhook else review.state,
            "commit_id": review.commit_id,
            "submitted_at": timestamp(review.submitted_at),
            "html_url": html_url,
            "pull_request_url": pull_url,
            "author_association": "NONE",
            "_links": {"html": {"href": html_url}, "pull_request": {"href": pull_url}},
        }

    def review_comment(self, repo: Repo, comment: ReviewComment) -> JSON:
        """A pull request review comment (REST and `pull_request_review_comment` webhooks)."""
        url = f"{self.api_url}/repos/{repo.full_name}/pulls/comments/{comment.id}"
        pull_url = f"{self.api_url}/repos/{repo.full_name}/pulls/{comment.pull_number}"
        html_url = (
            f"{self.web_url}/{repo.full_name}/pull/{comment.pull_number}#discussion_r{comment.id}"
        )
        body: JSON = {
            "id": comment.id,
            "node_id": f"PRRC_{comment.id}",
            "url": url,
            "pull_request_review_id": comment.review_id,
            "diff_hunk": comment.diff_hunk,
            "path": comment.path,
            "position": comment.line,
            "original_position": comment.line,
            "commit_id": comment.commit_id,
            "original_commit_id": comment.commit_id,
            "user": self.user(comment.user),
            "body": comment.body,
            "created_at": timestamp(comment.created_at),
            "updated_at": timestamp(comment.updated_at),
            "html_url": html_url,
            "pull_request_url": pull_url,
            "author_association": "NONE",
            "_links": {
                "self": {"href": url},
                "html": {"href": html_url},
                "pull_request": {"href": pull_url},
            },
            "start_line": None,
            "original_start_line": None,
            "start_side": None,
            "line": comment.line,
            "original_line": comment.line,
            "side": "RIGHT",
            "subject_type": "line" if comment.line is not None else "file",
        }
        if comment.in_reply_to_id is not None:
            body["in_reply_to_id"] = comment.in_reply_to_id
        return body

    # -- checks ------------------------------------------------------------------------------

    def app(self, slug: str) -> JSON:
        """The GitHub App that runs checks (`github-actions` by default)."""
        return {
            "id": sum(slug.encode()) + 10_000,
            "slug": slug,
            "node_id": f"A_{slug}",
            "name": slug,
            "html_url": f"{self.web_url}/apps/{quote(slug)}",
        }

    def pull_ref(self, repo: Repo, issue: Issue) -> JSON:
        """A pull request as check runs and suites list it: number, head and base only."""
        assert issue.pull is not None, "not a pull request"
        mini_repo = {
            "id": repo.id,
            "url": f"{self.api_url}/repos/{repo.full_name}",
            "name": repo.name,
        }
        return {
            "url": f"{self.api_url}/repos/{repo.full_name}/pulls/{issue.number}",
            "id": issue.id,
            "number": issue.number,
            "head": {"ref": issue.pull.head_ref, "sha": issue.pull.head_sha, "repo": mini_repo},
            "base": {
                "ref": issue.pull.base_ref,
                "sha": repo.refs.get(f"refs/heads/{issue.pull.base_ref}", ""),
                "repo": mini_repo,
            },
        }

    def check_suite(self, repo: Repo, suite: CheckSuite, pulls: list[Issue]) -> JSON:
        """A check suite (as `check_suite` webhooks and a run's `check_suite` carry it)."""
        url = f"{self.api_url}/repos/{repo.full_name}/check-suites/{suite.id}"
        return {
            "id": suite.id,
            "node_id": f"CS_{suite.id}",
            "head_branch": suite.head_branch,
            "head_sha": suite.head_sha,
            "status": suite.status,
            "conclusion": suite.conclusion,
            "url": url,
            "before": None,
            "after": suite.head_sha,
            "pull_requests": [self.pull_ref(repo, p) for p in pulls],
            "app": self.app(suite.app_slug),
            "created_at": timestamp(suite.created_at),
            "updated_at": timestamp(suite.updated_at),
            "check_runs_url": f"{url}/check-runs",
            "head_commit": {"id": suite.head_sha},
        }

    def check_run(
        self, repo: Repo, run: CheckRun, suite: CheckSuite, pulls: list[Issue], *, webhook: bool
    ) -> JSON:
        """A check run; REST gives its suite as `{id}`, webhooks the whole suite."""
        url = f"{self.api_url}/repos/{repo.full_name}/check-runs/{run.id}"
        return {
            "id": run.id,
            "node_id": f"CR_{run.id}",
            "head_sha": run.head_sha,
            "external_id": "",
            "url": url,
            "html_url": f"{self.web_url}/{repo.full_name}/runs/{run.id}",
            "details_url": f"{self.web_url}/{repo.full_name}/runs/{run.id}",
            "status": run.status,
            "conclusion": run.conclusion,
            "started_at": timestamp(run.started_at),
            "completed_at": timestamp(run.completed_at),
            "output": {
                "title": run.title,
                "summary": run.summary,
                "text": run.text,
                "annotations_count": len(run.annotations),
                "annotations_url": f"{url}/annotations",
            },
            "name": run.name,
            "check_suite": (self.check_suite(repo, suite, pulls) if webhook else {"id": suite.id}),
            "app": self.app(suite.app_slug),
            "pull_requests": [self.pull_ref(repo, p) for p in pulls],
        }

    def annotation(self, repo: Repo, run: CheckRun, annotation: Annotation) -> JSON:
        """A check run annotation."""
        return {
            "path": annotation.path,
            "start_line": annotation.start_line,
            "end_line": annotation.end_line or annotation.start_line,
            "start_column": None,
            "end_column": None,
            "annotation_level": annotation.level,
            "title": annotation.title,
            "message": annotation.message,
            "raw_details": None,
            "blob_href": (
                f"{self.web_url}/{repo.full_name}/blob/{run.head_sha}/{quote(annotation.path)}"
            ),
        }
