"""The emulator's records: plain mutable dataclasses, rendered to JSON by `render`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

#: Roles GitHub knows for a collaborator, strongest first.
ROLES = ("admin", "maintain", "write", "triage", "read")


def now() -> datetime:
    """The emulator's clock (UTC, second precision like GitHub's timestamps)."""
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class User:
    """A GitHub account; logins ending in `[bot]` are of type `Bot`."""

    login: str
    id: int

    @property
    def type(self) -> str:
        """`Bot` or `User`, as in GitHub's `user.type`."""
        return "Bot" if self.login.endswith("[bot]") else "User"


@dataclass
class Label:
    """A repository label."""

    id: int
    name: str
    color: str = "ededed"
    description: str | None = None


@dataclass
class Comment:
    """An issue (or pull request) comment."""

    id: int
    issue_number: int
    body: str
    user: User
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)


@dataclass
class ReviewComment:
    """A pull request review comment: a line comment of a review, or a reply in its thread."""

    id: int
    pull_number: int
    review_id: int
    user: User
    body: str
    path: str
    line: int | None
    commit_id: str
    diff_hunk: str
    in_reply_to_id: int | None = None  # a reply's thread: the top-level comment's id
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)


@dataclass
class Review:
    """A submitted pull request review; `state` in REST's spelling (`CHANGES_REQUESTED`)."""

    id: int
    pull_number: int
    user: User
    state: str
    body: str
    commit_id: str
    submitted_at: datetime = field(default_factory=now)


@dataclass
class Annotation:
    """A check run annotation (a file and line the run points at)."""

    path: str
    start_line: int
    message: str
    end_line: int | None = None
    level: str = "failure"  # notice | warning | failure
    title: str = ""


@dataclass
class CheckSuite:
    """The check suite of one app on one commit."""

    id: int
    head_sha: str
    head_branch: str | None
    app_slug: str
    status: str = "queued"
    conclusion: str | None = None
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)


@dataclass
class CheckRun:
    """A check run on a commit, with the output CI reports."""

    id: int
    suite_id: int
    name: str
    head_sha: str
    status: str = "completed"
    conclusion: str | None = None
    title: str | None = None
    summary: str | None = None
    text: str | None = None
    annotations: list[Annotation] = field(default_factory=list)
    started_at: datetime = field(default_factory=now)
    completed_at: datetime | None = None


@dataclass
class PullInfo:
    """What makes an issue a pull request."""

    head_owner: str
    head_ref: str
    head_sha: str
    base_ref: str
    draft: bool = False
    merged_at: datetime | None = None
    merged_by: User | None = None
    merge_sha: str | None = None
    reviews: list[Review] = field(default_factory=list)
    review_comments: list[ReviewComment] = field(default_factory=list)

    @property
    def head_label(self) -> str:
        """`owner:branch`, the form GitHub's `head` filter and messages use."""
        return f"{self.head_owner}:{self.head_ref}"


@dataclass
class IssueEvent:
    """A `labeled`/`unlabeled` event of an issue's timeline, with who did it."""

    id: int
    event: str
    actor: User
    label: str
    created_at: datetime = field(default_factory=now)


@dataclass
class Issue:
    """An issue; with `pull` set it is a pull request (they share one number sequence)."""

    number: int
    id: int
    title: str
    body: str
    user: User
    state: str = "open"
    labels: list[Label] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    pull: PullInfo | None = None
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)
    closed_at: datetime | None = None
    # Its timeline's label events (`GET …/issues/{n}/events`), oldest first.
    events: list[IssueEvent] = field(default_factory=list)

    def has_label(self, name: str) -> bool:
        """Label names compare case-insensitively, as on GitHub."""
        return any(label.name.lower() == name.lower() for label in self.labels)


@dataclass
class Repo:
    """A repository with its issues, pull requests, labels, refs and collaborators."""

    id: int
    owner: User
    name: str
    default_branch: str
    clone_url: str
    private: bool = False
    labels: dict[str, Label] = field(default_factory=dict)  # by lower-cased name
    issues: dict[int, Issue] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # "refs/heads/x" → sha
    roles: dict[str, str] = field(default_factory=dict)  # lower-cased login → role
    check_suites: dict[int, CheckSuite] = field(default_factory=dict)
    check_runs: list[CheckRun] = field(default_factory=list)  # oldest first
    next_number: int = 1
    # File contents per branch, then path (only the files a test puts there).
    files: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        """`owner/name`."""
        return f"{self.owner.login}/{self.name}"
