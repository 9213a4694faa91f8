"""The emulator's in-memory GitHub: repositories, issues, pull requests, comments, labels.

Operations are synchronous and run on the server's event loop, so each one is
atomic with respect to the others. Mutations return the webhook events GitHub
would send for them; the caller decides when to deliver them.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from github_emulator.errors import (
    ApiError,
    missing_field,
    not_found,
    validation_failed,
)
from github_emulator.events import Event, EventFactory
from github_emulator.model import (
    ROLES,
    Annotation,
    CheckRun,
    CheckSuite,
    Comment,
    Issue,
    IssueEvent,
    Label,
    PullInfo,
    Repo,
    Review,
    ReviewComment,
    User,
    now,
)
from github_emulator.render import Renderer

#: GitHub rejects comment and issue bodies longer than this.
MAX_BODY = 65536

#: A review's `event` (as `POST …/reviews` takes it) or state, in any case → REST's state.
REVIEW_STATES = {
    "approve": "APPROVED",
    "approved": "APPROVED",
    "request_changes": "CHANGES_REQUESTED",
    "changes_requested": "CHANGES_REQUESTED",
    "comment": "COMMENTED",
    "commented": "COMMENTED",
}

#: Check run conclusions GitHub accepts, the one that wins a suite's conclusion first.
CONCLUSIONS = (
    "action_required",
    "cancelled",
    "timed_out",
    "failure",
    "stale",
    "neutral",
    "success",
    "skipped",
)

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
        self._review_ids = itertools.count(4_000_000_001)
        self._review_comment_ids = itertools.count(5_000_000_001)
        self._check_suite_ids = itertools.count(6_000_000_001)
        self._check_run_ids = itertools.count(8_000_000_001)
        self._issue_event_ids = itertools.count(9_000_000_001)
        self._pushes = itertools.count(1)
        # Former names of renamed or transferred repositories (lower-cased) → the repository:
        # their REST URLs redirect to the current name (see `moved`).
        self.former_names: dict[str, Repo] = {}

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

    def rename_repo(self, repo: Repo, new_full_name: str, *, sender: str) -> list[Event]:
        """Rename (new name) or transfer (new owner) `repo`; its id, issues, pulls and
        refs stay. The old `owner/name` then redirects (`moved_repo`); webhooks carry the
        new name. Emits `repository.renamed` and/or `repository.transferred`."""
        owner, _, name = new_full_name.partition("/")
        if not owner or not name or "/" in name:
            raise validation_failed({"resource": "Repository", "code": "invalid", "field": "name"})
        if self.repos.get(new_full_name.lower(), repo) is not repo:
            raise validation_failed(
                {
                    "resource": "Repository",
                    "code": "custom",
                    "field": "name",
                    "message": "name already exists on this account",
                }
            )
        old_owner, old_name, old_full = repo.owner, repo.name, repo.full_name
        del self.repos[old_full.lower()]
        if repo.clone_url == f"{self.render.web_url}/{old_full}.git":
            repo.clone_url = f"{self.render.web_url}/{new_full_name}.git"
        repo.owner, repo.name = self.user(owner), name
        repo.roles.setdefault(owner.lower(), "admin")
        self.repos[new_full_name.lower()] = repo
        self.former_names[old_full.lower()] = repo
        self.former_names.pop(new_full_name.lower(), None)
        user, events = self.user(sender), []
        if name != old_name:
            events.append(self.events.repository_renamed(repo, user, old_name))
        if repo.owner is not old_owner:
            events.append(self.events.repository_transferred(repo, user, old_owner))
        return events

    def moved_repo(self, owner: str, name: str) -> Repo | None:
        """The repository `owner/name` was renamed or transferred to (None: it names a
        repository now, or never did)."""
        key = f"{owner}/{name}".lower()
        return None if key in self.repos else self.former_names.get(key)

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
            issue.events.append(
                IssueEvent(next(self._issue_event_ids), "labeled", sender, label.name)
            )
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
                issue.events.append(
                    IssueEvent(
                        next(self._issue_event_ids), "unlabeled", self.user(actor), label.name
                    )
                )
                event = self.events.labeled("unlabeled", repo, issue, self.user(actor), label)
                return list(issue.labels), [event]
        raise ApiError(404, "Label does not exist")

    # -- pull requests ----------------------------------------------------------

    def create_pull(
        self,
        repo: Repo,
        *,
        title: str,
        head: str,
        base: str,
        body: str,
        author: str,
        draft: bool = False,
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
                draft=draft,
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

    # -- reviews --------------------------------------------------------------------

    def submit_review(
        self,
        repo: Repo,
        number: int,
        *,
        author: str,
        state: str,
        body: str = "",
        comments: Sequence[Mapping[str, Any]] = (),
    ) -> tuple[Review, list[ReviewComment], list[Event]]:
        """Submit a review with line comments `{path, line, body}` on the PR's head commit.

        `state` is a review event or state in any case (`REQUEST_CHANGES`,
        `changes_requested`, `approve`, ...). Emits `pull_request_review.submitted`
        and then one `pull_request_review_comment.created` per comment.
        """
        issue = self.pull(repo, number)
        assert issue.pull is not None
        rest_state = REVIEW_STATES.get(state.lower())
        if rest_state is None:
            raise validation_failed(
                {"resource": "PullRequestReview", "code": "invalid", "field": "event"}
            )
        self._check_body(body)
        if rest_state == "CHANGES_REQUESTED" and not body:
            raise ApiError(422, "Unprocessable Entity", errors=["Body can't be blank"])
        if rest_state == "COMMENTED" and not body and not comments:
            raise ApiError(422, "Unprocessable Entity", errors=["Body can't be blank"])
        if rest_state != "COMMENTED" and issue.user.login.lower() == author.lower():
            verb = "approve" if rest_state == "APPROVED" else "request changes on"
            raise ApiError(
                422, "Unprocessable Entity", errors=[f"Can not {verb} your own pull request"]
            )
        specs = [_line_comment(spec) for spec in comments]
        user = self.user(author)
        review = Review(
            id=next(self._review_ids),
            pull_number=number,
            user=user,
            state=rest_state,
            body=body,
            commit_id=issue.pull.head_sha,
        )
        created = [
            self._review_comment(issue, review, path=path, line=line, body=text)
            for path, line, text in specs
        ]
        issue.pull.reviews.append(review)
        issue.updated_at = now()
        events = [self.events.pull_request_review(repo, issue, review, user)]
        events += [self.events.pull_request_review_comment(repo, issue, c, user) for c in created]
        return review, created, events

    def reply_to_review_comment(
        self, repo: Repo, number: int, comment_id: int, body: str, author: str
    ) -> tuple[ReviewComment, list[Event]]:
        """Reply in a review thread; GitHub files the reply in a new `COMMENTED` review.

        404 when the comment is not one of this PR's; 422 when it is itself a reply
        (GitHub only takes the id of a thread's top-level comment). Emits
        `pull_request_review.submitted` (state `commented`) and
        `pull_request_review_comment.created`, as GitHub does.
        """
        issue = self.pull(repo, number)
        assert issue.pull is not None
        target = next((c for c in issue.pull.review_comments if c.id == comment_id), None)
        if target is None:
            raise not_found()
        if not body:
            raise missing_field("PullRequestReviewComment", "body")
        self._check_body(body)
        if target.in_reply_to_id is not None:
            raise validation_failed(
                {
                    "resource": "PullRequestReviewComment",
                    "code": "invalid",
                    "field": "in_reply_to",
                    "message": "replies to replies are not supported; reply to the thread's "
                    f"first comment ({target.in_reply_to_id})",
                }
            )
        user = self.user(author)
        review = Review(
            id=next(self._review_ids),
            pull_number=number,
            user=user,
            state="COMMENTED",
            body="",
            commit_id=issue.pull.head_sha,
        )
        reply = self._review_comment(
            issue, review, path=target.path, line=target.line, body=body, reply_to=target.id
        )
        reply.diff_hunk = target.diff_hunk
        issue.pull.reviews.append(review)
        issue.updated_at = now()
        events = [
            self.events.pull_request_review(repo, issue, review, user),
            self.events.pull_request_review_comment(repo, issue, reply, user),
        ]
        return reply, events

    def review(self, repo: Repo, number: int, review_id: int) -> Review:
        """A review of this PR, or 404."""
        issue = self.pull(repo, number)
        assert issue.pull is not None
        found = next((r for r in issue.pull.reviews if r.id == review_id), None)
        if found is None:
            raise not_found()
        return found

    def review_comments(
        self, repo: Repo, number: int, review_id: int | None = None
    ) -> list[ReviewComment]:
        """A PR's review comments in ascending id (one review's when `review_id` is given)."""
        issue = self.pull(repo, number)
        assert issue.pull is not None
        if review_id is not None:
            self.review(repo, number, review_id)
        return [
            c
            for c in sorted(issue.pull.review_comments, key=lambda c: c.id)
            if review_id is None or c.review_id == review_id
        ]

    def _review_comment(
        self,
        issue: Issue,
        review: Review,
        *,
        path: str,
        line: int | None,
        body: str,
        reply_to: int | None = None,
    ) -> ReviewComment:
        assert issue.pull is not None
        comment = ReviewComment(
            id=next(self._review_comment_ids),
            pull_number=issue.number,
            review_id=review.id,
            user=review.user,
            body=body,
            path=path,
            line=line,
            commit_id=review.commit_id,
            diff_hunk=f"@@ -{line or 1},1 +{line or 1},1 @@",
            in_reply_to_id=reply_to,
        )
        issue.pull.review_comments.append(comment)
        return comment

    # -- comment edits ----------------------------------------------------------------

    def find_comment(self, repo: Repo, comment_id: int) -> tuple[Issue, Comment]:
        """An issue comment of the repository by id, with its issue; 404 when absent."""
        for issue in repo.issues.values():
            for comment in issue.comments:
                if comment.id == comment_id:
                    return issue, comment
        raise not_found()

    def edit_comment(
        self, repo: Repo, comment_id: int, body: str, actor: str
    ) -> tuple[Comment, list[Event]]:
        """Replace an issue comment's body; emits `issue_comment.edited` with the old body.

        Its author may edit it, and so may a collaborator with write access or more
        (GitHub lets maintainers edit anyone's comment); anyone else gets 403.
        """
        issue, comment = self.find_comment(repo, comment_id)
        if not body:
            raise missing_field("IssueComment", "body")
        self._check_body(body)
        is_author = comment.user.login.lower() == actor.lower()
        if not is_author and self.role(repo, actor) not in ("admin", "maintain", "write"):
            message = (
                "Resource not accessible by integration"
                if actor.endswith("[bot]")
                else "Must have push access to edit another user's comment."
            )
            raise ApiError(403, message)
        old = comment.body
        comment.body, comment.updated_at = body, now()
        sender = self.user(actor)
        return comment, [
            self.events.issue_comment(repo, issue, comment, sender, "edited", old_body=old)
        ]

    # -- checks ------------------------------------------------------------------------

    def complete_checks(
        self,
        repo: Repo,
        sha: str,
        runs: Sequence[Mapping[str, Any]],
        *,
        app: str = "github-actions",
    ) -> tuple[CheckSuite, list[CheckRun], list[Event]]:
        """Record a finished check suite of `app` on commit `sha`.

        `runs`: `{name, conclusion, title?, summary?, text?, annotations?: [{path,
        start_line, message, end_line?, annotation_level?, title?}]}`. Emits one
        `check_run.completed` per run, then `check_suite.completed` whose conclusion
        is the most severe of the runs' (`failure` beats `success`, see `CONCLUSIONS`).
        Open PRs whose head is `sha` are listed in every payload's `pull_requests`.
        """
        if not re.fullmatch(r"[0-9a-f]{40}", sha):
            raise ApiError(422, f"No commit found for SHA: {sha}")
        if not runs:
            raise missing_field("CheckSuite", "check_runs")
        sender = self.user(f"{app}[bot]")
        pulls = self._pulls_at(repo, sha)
        suite = CheckSuite(
            id=next(self._check_suite_ids),
            head_sha=sha,
            head_branch=self._branch_at(repo, sha, pulls),
            app_slug=app,
            status="in_progress",
        )
        repo.check_suites[suite.id] = suite
        created, events = [], []
        for spec in runs:
            run = _check_run(spec, next(self._check_run_ids), suite)
            repo.check_runs.append(run)
            created.append(run)
            events.append(self.events.check_run(repo, run, suite, pulls, sender))
        suite.status, suite.updated_at = "completed", now()
        suite.conclusion = min((r.conclusion or "neutral" for r in created), key=CONCLUSIONS.index)
        events.append(self.events.check_suite(repo, suite, pulls, sender))
        return suite, created, events

    def check_runs(
        self,
        repo: Repo,
        ref: str,
        *,
        check_name: str | None = None,
        status: str | None = None,
        latest: bool = True,
    ) -> list[CheckRun]:
        """Check runs on a commit (a SHA, branch or tag), like `GET …/commits/{ref}/check-runs`.

        `latest` (GitHub's default `filter=latest`) keeps the newest run of each name.
        """
        sha = self.resolve_commit(repo, ref)
        found = [r for r in repo.check_runs if r.head_sha == sha]
        if latest:
            newest = {r.name: r for r in found}  # later runs replace earlier ones
            found = [r for r in found if newest[r.name] is r]
        return [
            r
            for r in found
            if (check_name is None or r.name == check_name)
            and (status is None or r.status == status)
        ]

    def check_run(self, repo: Repo, run_id: int) -> CheckRun:
        """A check run by id, or 404."""
        found = next((r for r in repo.check_runs if r.id == run_id), None)
        if found is None:
            raise not_found()
        return found

    @staticmethod
    def resolve_commit(repo: Repo, ref: str) -> str:
        """A commit SHA from a SHA, a branch or a tag; 422 as GitHub answers for neither.

        A branch only an open PR knows of (opened without a ref here) is its head."""
        if re.fullmatch(r"[0-9a-f]{40}", ref):
            return ref
        for full in (ref, f"refs/heads/{ref}", f"refs/tags/{ref}"):
            if full.startswith("refs/") and full in repo.refs:
                return repo.refs[full]
        for issue in repo.issues.values():
            if issue.pull is not None and issue.state == "open" and issue.pull.head_ref == ref:
                return issue.pull.head_sha
        raise ApiError(422, f"No commit found for SHA: {ref}")

    def pulls_at(self, repo: Repo, sha: str) -> list[Issue]:
        """Open pull requests whose head commit is `sha` (what check payloads list)."""
        return self._pulls_at(repo, sha)

    @staticmethod
    def _pulls_at(repo: Repo, sha: str) -> list[Issue]:
        return [
            i
            for i in sorted(repo.issues.values(), key=lambda i: i.number)
            if i.pull is not None and i.state == "open" and i.pull.head_sha == sha
        ]

    @staticmethod
    def _branch_at(repo: Repo, sha: str, pulls: list[Issue]) -> str | None:
        for ref, target in repo.refs.items():
            if target == sha and ref.startswith("refs/heads/"):
                return ref.removeprefix("refs/heads/")
        return pulls[0].pull.head_ref if pulls and pulls[0].pull else None

    # -- pushes ---------------------------------------------------------------------------

    def push(
        self, repo: Repo, branch: str, actor: str, sha: str | None = None
    ) -> tuple[str, list[Event]]:
        """Move `refs/heads/<branch>` to `sha` (a fresh one by default), as a `git push` does.

        Open PRs from that branch get the new head; each sends `pull_request.synchronize`.
        """
        if not branch:
            raise missing_field("Reference", "ref")
        sha = sha or fake_sha("push", repo.full_name, branch, next(self._pushes))
        if not re.fullmatch(r"[0-9a-f]{40}", sha):
            raise ApiError(422, "Object does not exist")
        repo.refs[f"refs/heads/{branch}"] = sha
        sender, events = self.user(actor), []
        for issue in self.pulls(repo, state="open"):
            assert issue.pull is not None
            same_repo = issue.pull.head_owner.lower() == repo.owner.login.lower()
            if same_repo and issue.pull.head_ref == branch and issue.pull.head_sha != sha:
                issue.pull.head_sha, issue.updated_at = sha, now()
                events.append(self.events.pull_request("synchronize", repo, issue, sender))
        return sha, events

    def put_file(
        self, repo: Repo, branch: str, path: str, text: str | None, actor: str
    ) -> tuple[str, list[Event]]:
        """Commit `text` at `path` on `branch` (None: remove the file): the branch moves to a
        fresh commit and a `push` event names the file as added, modified or removed."""
        files = repo.files.setdefault(branch, {})
        kind = "removed" if text is None else ("modified" if path in files else "added")
        if text is None:
            files.pop(path, None)
        else:
            files[path] = text
        before = repo.refs.get(f"refs/heads/{branch}", "0" * 40)
        sha, events = self.push(repo, branch, actor)
        changed = {k: [path] if k == kind else [] for k in ("added", "modified", "removed")}
        events.append(self.events.push(repo, self.user(actor), branch, (before, sha), changed))
        return sha, events

    @staticmethod
    def file(repo: Repo, branch: str, path: str) -> str:
        """A file's text on a branch, or 404."""
        text = repo.files.get(branch, {}).get(path)
        if text is None:
            raise not_found()
        return text

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


def _line_comment(spec: Mapping[str, Any]) -> tuple[str, int, str]:
    """`{path, line, body}` of a review's line comment, validated like GitHub's 422s."""
    path, line, body = spec.get("path"), spec.get("line"), spec.get("body")
    if not isinstance(path, str) or not path:
        raise missing_field("PullRequestReviewComment", "path")
    if not isinstance(line, int) or isinstance(line, bool) or line < 1:
        raise validation_failed(
            {"resource": "PullRequestReviewComment", "code": "invalid", "field": "line"}
        )
    if not isinstance(body, str) or not body:
        raise missing_field("PullRequestReviewComment", "body")
    return path, line, body


def _text(spec: Mapping[str, Any], key: str) -> str | None:
    value = spec.get(key)
    return None if value is None else str(value)


def _check_run(spec: Mapping[str, Any], run_id: int, suite: CheckSuite) -> CheckRun:
    """A completed check run from `{name, conclusion, title, summary, text, annotations}`."""
    name, conclusion = spec.get("name"), spec.get("conclusion", "success")
    if not isinstance(name, str) or not name:
        raise missing_field("CheckRun", "name")
    if conclusion not in CONCLUSIONS:
        raise validation_failed({"resource": "CheckRun", "code": "invalid", "field": "conclusion"})
    annotations = []
    for item in spec.get("annotations") or []:
        path, line, message = item.get("path"), item.get("start_line"), item.get("message")
        if not isinstance(path, str) or not isinstance(line, int) or not isinstance(message, str):
            raise validation_failed(
                {"resource": "CheckRun", "code": "invalid", "field": "output.annotations"}
            )
        annotations.append(
            Annotation(
                path=path,
                start_line=line,
                message=message,
                end_line=item.get("end_line"),
                level=str(item.get("annotation_level") or "failure"),
                title=str(item.get("title") or ""),
            )
        )
    moment = now()
    return CheckRun(
        id=run_id,
        suite_id=suite.id,
        name=name,
        head_sha=suite.head_sha,
        status="completed",
        conclusion=str(conclusion),
        title=_text(spec, "title"),
        summary=_text(spec, "summary"),
        text=_text(spec, "text"),
        annotations=annotations,
        started_at=moment,
        completed_at=moment,
    )


def _pull_error(message: str) -> ApiError:
    return validation_failed({"resource": "PullRequest", "code": "custom", "message": message})
