"""The emulator's in-memory GitHub: repositories, issues, pull requests, comments, labels.

Operations are synchronous and run on the server's event loop, so each one is
atomic with respect to the others. Mutations return the webhook events GitHub
would send for them; the caller decides when to deliver them.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable, Sequence

from github_emulator.errors import (
    ApiError,
    missing_field,
    not_found,
    validation_failed,
)
from github_emulator.events import Event, EventFactory
from github_emulator.model import (
    ROLES,
    Comment,
    Issue,
    Label,
    PullInfo,
    Repo,
    User,
    now,
)
from github_emulator.render import Renderer

#: GitHub rejects comment and issue bodies longer than this.
MAX_BODY = 65536

#: Keywords in a merged PR's body that close an issue of the same repository.
_CLOSES = re.compile(r"\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\s+#(\d+)", re.IGNORECASE)


def fake_sha(*parts: object) -> str:
    """A stable 40-hex "commit" for things the emulator has no git objects for."""
    return hashlib.sha1(repr(parts).encode(), usedforsecurity=False).hexdigest()


class EmulatorState:
    """All repositories and users, plus the id sequences GitHub would assign."""

    def __init__(self, render: Renderer, events: EventFactory) -> None:
        self.render = render
        self.events = events
        self.repos: dict[str, Repo] = {}  # by lower-cased full name
        self.users: dict[str, User] = {}  # by lower-cased login
        # Distinct ranges so a test that mixes up a comment id and an issue number fails.
        self._user_ids = itertools.count(1001)
        self._repo_ids = itertools.count(500_001)
        self._issue_ids = itertools.count(2_000_000_001)
        self._comment_ids = itertools.count(3_000_000_001)
        self._label_ids = itertools.count(7_001)

    # -- users and repositories -------------------------------------------------

    def user(self, login: str) -> User:
        """The account for `login`, created on first sight."""
        key = login.lower()
        if key not in self.users:
            self.users[key] = User(login=login, id=next(self._user_ids))
        return self.users[key]

    def create_repo(
        self,
        full_name: str,
        *,
        default_branch: str = "main",
        clone_url: str | None = None,
        private: bool = False,
    ) -> Repo:
        """Create `owner/name`; its owner gets admin and the default branch a ref."""
        owner, _, name = full_name.partition("/")
        if not owner or not name or "/" in name:
            raise validation_failed({"resource": "Repository", "code": "invalid", "field": "name"})
        if full_name.lower() in self.repos:
            raise validation_failed(
                {
                    "resource": "Repository",
                    "code": "custom",
                    "field": "name",
                    "message": "name already exists on this account",
                }
            )
        repo = Repo(
            id=next(self._repo_ids),
            owner=self.user(owner),
            name=name,
            default_branch=default_branch,
            clone_url=clone_url or f"{self.render.web_url}/{full_name}.git",
            private=private,
        )
        repo.roles[owner.lower()] = "admin"
        repo.refs[f"refs/heads/{default_branch}"] = fake_sha(full_name, default_branch)
        self.repos[full_name.lower()] = repo
        return repo

    def repo(self, owner: str, name: str) -> Repo:
        """The repository, or GitHub's 404."""
        repo = self.repos.get(f"{owner}/{name}".lower())
        if repo is None:
            raise not_found()
        return repo

    def set_role(self, repo: Repo, login: str, role: str) -> None:
        """Make `login` a collaborator with `role` (or remove them with `none`)."""
        if role not in (*ROLES, "none"):
            raise validation_failed({"resource": "Collaborator", "code": "invalid"})
        self.user(login)
        if role == "none":
            repo.roles.pop(login.lower(), None)
        else:
            repo.roles[login.lower()] = role

    @staticmethod
    def role(repo: Repo, login: str) -> str:
        """The user's role on the repository, `none` when not a collaborator."""
        return repo.roles.get(login.lower(), "none")

    # -- issues and comments ----------------------------------------------------

    def create_issue(
        self, repo: Repo, *, title: str, body: str, author: str, labels: Sequence[str] = ()
    ) -> tuple[Issue, list[Event]]:
        """Open an issue; emits `issues.opened`."""
        if not title:
            raise missing_field("Issue", "title")
        self._check_body(body)
        issue = Issue(
            number=self._next_number(repo),
            id=next(self._issue_ids),
            title=title,
            body=body,
            user=self.user(author),
        )
        issue.labels = [self._repo_label(repo, name) for name in labels]
        repo.issues[issue.number] = issue
        return issue, [self.events.issues("opened", repo, issue, issue.user)]

    def issue(self, repo: Repo, number: int) -> Issue:
        """An issue or pull request by number, or 404."""
        issue = repo.issues.get(number)
        if issue is None:
            raise not_found()
        return issue

    def add_comment(
        self, repo: Repo, number: int, body: str, author: str
    ) -> tuple[Comment, list[Event]]:
        """Comment on an issue or PR; emits `issue_comment.created`."""
        issue = self.issue(repo, number)
        if not body:
            raise missing_field("IssueComment", "body")
        self._check_body(body)
        comment = Comment(
            id=next(self._comment_ids), issue_number=number, body=body, user=self.user(author)
        )
        issue.comments.append(comment)
        issue.updated_at = now()
        return comment, [self.events.issue_comment(repo, issue, comment, comment.user)]

    def add_labels(
        self, repo: Repo, number: int, names: Iterable[str], actor: str
    ) -> tuple[list[Label], list[Event]]:
        """Add labels (creating missing ones); emits one `labeled` per label not already there."""
        issue = self.issue(repo, number)
        sender = self.user(actor)
        events: list[Event] = []
        for name in names:
            if not name.strip():
                raise validation_failed({"resource": "Label", "code": "invalid", "field": "name"})
            if issue.has_label(name):
                continue  # adding a present label is a no-op and sends nothing
            label = self._repo_label(repo, name)
            issue.labels.append(label)
            events.append(self.events.labeled("labeled", repo, issue, sender, label))
        if events:
            issue.updated_at = now()
        return list(issue.labels), events

    def remove_label(
        self, repo: Repo, number: int, name: str, actor: str
    ) -> tuple[list[Label], list[Event]]:
        """Remove a label; 404 "Label does not exist" when the issue lacks it."""
        issue = self.issue(repo, number)
        for label in issue.labels:
            if label.name.lower() == name.lower():
                issue.labels.remove(label)
                issue.updated_at = now()
                event = self.events.labeled("unlabeled", repo, issue, self.user(actor), label)
                return list(issue.labels), [event]
        raise ApiError(404, "Label does not exist")

    # -- pull requests ----------------------------------------------------------

    def create_pull(
        self, repo: Repo, *, title: str, head: str, base: str, body: str, author: str
    ) -> tuple[Issue, list[Event]]:
        """Open a PR; 422 when an open PR from `head` into `base` already exists."""
        if not title:
            raise missing_field("PullRequest", "title")
        if not head:
            raise missing_field("PullRequest", "head")
        if not base:
            raise missing_field("PullRequest", "base")
        self._check_body(body)
        head_owner, _, head_ref = head.rpartition(":")
        head_owner = head_owner or repo.owner.login
        if head_ref == base and head_owner.lower() == repo.owner.login.lower():
            raise _pull_error(f"No commits between {base} and {head_ref}")
        for other in self.pulls(repo, state="open"):
            assert other.pull is not None
            same_head = other.pull.head_label.lower() == f"{head_owner}:{head_ref}".lower()
            if same_head and other.pull.base_ref == base:
                raise _pull_error(f"A pull request already exists for {other.pull.head_label}.")
        number = self._next_number(repo)
        issue = Issue(
            number=number,
            id=next(self._issue_ids),
            title=title,
            body=body,
            user=self.user(author),
            pull=PullInfo(
                head_owner=head_owner,
                head_ref=head_ref,
                head_sha=repo.refs.get(f"refs/heads/{head_ref}") or fake_sha(head, number),
                base_ref=base,
            ),
        )
        repo.issues[number] = issue
        return issue, [self.events.pull_request("opened", repo, issue, issue.user)]

    def pull(self, repo: Repo, number: int) -> Issue:
        """A pull request by number; 404 for plain issues too."""
        issue = self.issue(repo, number)
        if issue.pull is None:
            raise not_found()
        return issue

    @staticmethod
    def pulls(
        repo: Repo, *, state: str = "open", head: str | None = None, base: str | None = None
    ) -> list[Issue]:
        """Pull requests, newest first, filtered like `GET /pulls`.

        As on GitHub, a `head` without the `owner:` prefix is silently ignored,
        so a client that forgets the prefix gets every PR back.
        """
        found = []
        for issue in sorted(repo.issues.values(), key=lambda i: i.number, reverse=True):
            pull = issue.pull
            if pull is None or (state != "all" and issue.state != state):
                continue
            if head and ":" in head and pull.head_label.lower() != head.lower():
                continue
            if base and pull.base_ref != base:
                continue
            found.append(issue)
        return found

    def merge_pull(
        self, repo: Repo, number: int, actor: str, sha: str | None = None
    ) -> tuple[Issue, list[Event]]:
        """Merge an open PR; closes the issues its body says it closes (into the default branch).

        Emits `pull_request.closed` (merged) and `issues.closed` for each closed issue.
        """
        issue = self.pull(repo, number)
        assert issue.pull is not None
        if issue.state != "open":
            raise ApiError(405, "Pull Request is not mergeable")
        if sha is not None and sha != issue.pull.head_sha:
            raise ApiError(409, "Head branch was modified. Review and try the merge again.")
        sender = self.user(actor)
        moment = now()
        issue.state, issue.closed_at, issue.updated_at = "closed", moment, moment
        issue.pull.merged_at, issue.pull.merged_by = moment, sender
        issue.pull.merge_sha = fake_sha("merge", repo.full_name, number)
        repo.refs[f"refs/heads/{issue.pull.base_ref}"] = issue.pull.merge_sha
        events = [self.events.pull_request("closed", repo, issue, sender)]
        if issue.pull.base_ref == repo.default_branch:
            for match in _CLOSES.finditer(issue.body):
                target = repo.issues.get(int(match.group(1)))
                if target is not None and target.pull is None and target.state == "open":
                    target.state, target.closed_at, target.updated_at = "closed", moment, moment
                    events.append(self.events.issues("closed", repo, target, sender))
        return issue, events

    # -- git refs -----------------------------------------------------------------

    @staticmethod
    def create_ref(repo: Repo, ref: str, sha: str) -> None:
        """Create `refs/...`; 422 "Reference already exists" when it does."""
        if not ref:
            raise missing_field("Reference", "ref")
        if not ref.startswith("refs/") or ref.count("/") < 2:
            raise ApiError(422, "Reference name must start with 'refs/' and have two slashes.")
        if not re.fullmatch(r"[0-9a-f]{40}", sha or ""):
            raise ApiError(422, "Object does not exist")
        if ref in repo.refs:
            raise ApiError(422, "Reference already exists")
        repo.refs[ref] = sha

    @staticmethod
    def ref(repo: Repo, ref: str) -> str:
        """The sha a ref points at, or 404."""
        sha = repo.refs.get(ref)
        if sha is None:
            raise not_found()
        return sha

    # -- helpers ------------------------------------------------------------------

    @staticmethod
    def _next_number(repo: Repo) -> int:
        number = repo.next_number
        repo.next_number += 1
        return number

    def _repo_label(self, repo: Repo, name: str) -> Label:
        """The repository's label of that name (case-insensitive), created if missing."""
        key = name.lower()
        if key not in repo.labels:
            repo.labels[key] = Label(id=next(self._label_ids), name=name)
        return repo.labels[key]

    @staticmethod
    def _check_body(body: str) -> None:
        if len(body) > MAX_BODY:
            raise validation_failed(
                {
                    "resource": "IssueComment",
                    "code": "custom",
                    "field": "body",
                    "message": f"body is too long (maximum is {MAX_BODY} characters)",
                }
            )


def _pull_error(message: str) -> ApiError:
    return validation_failed({"resource": "PullRequest", "code": "custom", "message": message})
