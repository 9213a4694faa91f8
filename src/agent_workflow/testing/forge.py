"""An in-memory forge that records every call: the router's unit-test twin.

Faults can be queued per method: `drop` applies the mutation and then raises
`UncertainOutcome` (the response was lost); `fail` raises it before applying;
`refuse` (or `refuse:<status>`, 422 by default) raises `EffectRefused` before applying,
as GitHub does for a too-long body (422), a locked issue (403) or a deleted one (410).
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from agent_workflow.core.errors import EffectRefused, ForgeError, UncertainOutcome
from agent_workflow.core.ports import (
    CheckRun,
    Comment,
    Permission,
    PullRequest,
    RepoFile,
    ReviewComment,
)

READS = frozenset(
    {
        "list_comments",
        "find_pull_request",
        "permission",
        "whoami",
        "review_comments",
        "list_review_comments",
        "check_runs",
        "file_contents",
    }
)
BOT = "agent-workflow[bot]"
"""The login the twin acts as (what `whoami` answers)."""


@dataclass
class MemoryForge:
    """Recording twin of the `Forge` protocol."""

    permissions: dict[str, Permission] = field(default_factory=dict)
    login: str = BOT  # who the twin's mutations are authored by
    default_permission: Permission = "write"
    comments: dict[tuple[str, int], list[Comment]] = field(
        default_factory=lambda: defaultdict(list)
    )
    labels: dict[tuple[str, int], set[str]] = field(default_factory=lambda: defaultdict(set))
    pulls: dict[str, list[PullRequest]] = field(default_factory=lambda: defaultdict(list))
    # Review comments and replies per (repo, PR), ascending id; `reviews` maps a review
    # id to its comments' ids.
    review_threads: dict[tuple[str, int], list[ReviewComment]] = field(
        default_factory=lambda: defaultdict(list)
    )
    reviews: dict[int, list[int]] = field(default_factory=dict)
    checks: dict[tuple[str, str], list[CheckRun]] = field(default_factory=dict)  # (repo, sha)
    files: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (repo, ref, path)
    not_modified: int = 0  # conditional reads answered "unchanged" (GitHub's 304)
    calls: Counter[str] = field(default_factory=Counter)
    # Mutations as applied, in order: "method:detail" (a label, a head branch, a comment id).
    log: list[str] = field(default_factory=list)
    faults: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    @property
    def reads(self) -> int:
        """How many read calls were made."""
        return sum(n for name, n in self.calls.items() if name in READS)

    def inject(self, method: str, kind: str, times: int = 1) -> None:
        """Queue a fault (`drop`, `fail`, `refuse[:status]`) for the next `times` calls."""
        self.faults[method].extend([kind] * times)

    def _fault(self, method: str) -> str | None:
        self.calls[method] += 1
        queue = self.faults.get(method)
        fault = queue.pop(0) if queue else None
        if fault is not None and fault.startswith("refuse"):
            status = int(fault.partition(":")[2] or 422)
            raise EffectRefused(f"{method}: {status} refused (injected)", status=status)
        return fault

    def _mutate(self, method: str) -> bool:
        """Returns whether to raise after applying (`drop`)."""
        fault = self._fault(method)
        if fault == "fail":
            raise UncertainOutcome(f"{method}: 502 before apply (injected)")
        return fault == "drop"

    async def create_comment(self, repo: str, issue_number: int, body: str) -> int:
        """Append a comment."""
        drop = self._mutate("create_comment")
        comment = Comment(next(self._ids), body, self.login)
        self.comments[(repo, issue_number)].append(comment)
        self.log.append(f"create_comment:{comment.id}")
        if drop:
            raise UncertainOutcome("create_comment: response dropped (injected)")
        return comment.id

    async def add_labels(self, repo: str, issue_number: int, labels: Sequence[str]) -> None:
        """Add labels."""
        drop = self._mutate("add_labels")
        self.labels[(repo, issue_number)].update(labels)
        self.log.append(f"add_labels:{','.join(labels)}")
        if drop:
            raise UncertainOutcome("add_labels: response dropped (injected)")

    async def remove_label(self, repo: str, issue_number: int, label: str) -> None:
        """Remove a label; absent is fine."""
        drop = self._mutate("remove_label")
        self.labels[(repo, issue_number)].discard(label)
        self.log.append(f"remove_label:{label}")
        if drop:
            raise UncertainOutcome("remove_label: response dropped (injected)")

    async def open_pull_request(
        self, repo: str, *, head: str, base: str, title: str, body: str, draft: bool = False
    ) -> PullRequest:
        """Open a PR, adopting an existing open one for the same head."""
        drop = self._mutate("open_pull_request")
        existing = [p for p in self.pulls[repo] if p.head == head and p.state == "open"]
        if existing:
            return existing[0]
        pr = PullRequest(number=next(self._ids), head=head, author=self.login, draft=draft)
        self.pulls[repo].append(pr)
        self.log.append(f"open_pull_request:{head}")
        if drop:
            raise UncertainOutcome("open_pull_request: response dropped (injected)")
        return pr

    async def find_pull_request(self, repo: str, head: str) -> PullRequest | None:
        """Find a PR by head in any state."""
        self._fault("find_pull_request")
        return next((p for p in self.pulls[repo] if p.head == head), None)

    async def list_comments(self, repo: str, issue_number: int) -> list[Comment]:
        """All comments of an issue."""
        if self._fault("list_comments") == "fail":
            raise ForgeError("list_comments failed (injected)")
        return list(self.comments[(repo, issue_number)])

    async def permission(self, repo: str, user: str) -> Permission:
        """The configured permission of `user`."""
        self._fault("permission")
        return self.permissions.get(user, self.default_permission)

    async def whoami(self) -> str:
        """Our own login."""
        self._fault("whoami")
        return self.login

    async def review_comments(
        self, repo: str, pr_number: int, review_id: int
    ) -> list[ReviewComment]:
        """The comments of one review; an unknown review is GitHub's 404."""
        self._read("review_comments")
        ids = self.reviews.get(review_id)
        if ids is None:
            raise EffectRefused("review_comments: 404 Not Found", status=404)
        return [c for c in self.review_threads[(repo, pr_number)] if c.id in ids]

    async def list_review_comments(self, repo: str, pr_number: int) -> list[ReviewComment]:
        """Every review comment of a PR, replies included."""
        self._read("list_review_comments")
        return list(self.review_threads[(repo, pr_number)])

    async def reply_to_review_comment(
        self, repo: str, pr_number: int, comment_id: int, body: str
    ) -> int:
        """Reply in a thread; 404 for an unknown comment, 422 for a reply to a reply."""
        drop = self._mutate("reply_to_review_comment")
        thread = self.review_threads[(repo, pr_number)]
        target = next((c for c in thread if c.id == comment_id), None)
        if target is None:
            raise EffectRefused("reply_to_review_comment: 404 Not Found", status=404)
        if target.in_reply_to_id is not None:
            raise EffectRefused("reply_to_review_comment: 422 reply to a reply", status=422)
        reply = self._add_review_comment(
            repo, pr_number, self.login, body, target.path, target.line, target.id
        )
        self.log.append(f"reply_to_review_comment:{comment_id}")
        if drop:
            raise UncertainOutcome("reply_to_review_comment: response dropped (injected)")
        return reply.id

    async def edit_comment(self, repo: str, comment_id: int, body: str) -> None:
        """Replace one of our comments' body; 404 unknown, 403 someone else's."""
        drop = self._mutate("edit_comment")
        for comments in (c for (r, _), c in self.comments.items() if r == repo):
            for index, comment in enumerate(comments):
                if comment.id != comment_id:
                    continue
                if comment.author != self.login:
                    raise EffectRefused("edit_comment: 403 not our comment", status=403)
                comments[index] = replace(comment, body=body)
                self.log.append(f"edit_comment:{comment_id}")
                if drop:
                    raise UncertainOutcome("edit_comment: response dropped (injected)")
                return
        raise EffectRefused("edit_comment: 404 Not Found", status=404)

    async def check_runs(self, repo: str, sha: str) -> list[CheckRun]:
        """The check runs set for the commit (see `set_check_runs`)."""
        self._read("check_runs")
        return list(self.checks.get((repo, sha), []))

    async def file_contents(
        self, repo: str, path: str, ref: str, *, etag: str | None = None
    ) -> RepoFile | None:
        """The file set by `set_file`; `unchanged` when `etag` still matches."""
        self._read("file_contents")
        text = self.files.get((repo, ref, path))
        if text is None:
            return None
        sha = blob_sha(text)
        if etag == f'"{sha}"':
            self.not_modified += 1
            return RepoFile(etag=etag, unchanged=True)
        return RepoFile(etag=f'"{sha}"', text=text, sha=sha)

    def set_file(self, repo: str, ref: str, path: str, text: str | None) -> None:
        """Put (or, with None, remove) a file on a branch (not a call of ours)."""
        if text is None:
            self.files.pop((repo, ref, path), None)
        else:
            self.files[(repo, ref, path)] = text

    def _read(self, method: str) -> None:
        if self._fault(method) == "fail":
            raise ForgeError(f"{method} failed (injected)")

    def _add_review_comment(
        self,
        repo: str,
        pr_number: int,
        author: str,
        body: str,
        path: str,
        line: int | None,
        reply_to: int | None = None,
        review_id: int | None = None,
    ) -> ReviewComment:
        comment = ReviewComment(
            id=next(self._ids),
            body=body,
            author=author,
            path=path,
            line=line,
            diff_hunk=f"@@ -{line or 1},1 +{line or 1},1 @@",
            in_reply_to_id=reply_to,
        )
        self.review_threads[(repo, pr_number)].append(comment)
        self.reviews.setdefault(next(self._ids) if review_id is None else review_id, []).append(
            comment.id
        )
        return comment

    def review_as(
        self,
        author: str,
        repo: str,
        pr_number: int,
        comments: Sequence[tuple[str, int, str]] = (),
    ) -> tuple[int, list[int]]:
        """A review by someone else with line comments `(path, line, body)` (not a call of
        ours: neither counted nor logged). Returns the review id and the comments' ids."""
        review_id = next(self._ids)
        self.reviews[review_id] = []
        ids = [
            self._add_review_comment(repo, pr_number, author, body, path, line, None, review_id).id
            for path, line, body in comments
        ]
        return review_id, ids

    def reply_as(self, author: str, repo: str, pr_number: int, comment_id: int, body: str) -> int:
        """A reply by someone else in the thread of `comment_id` (not counted nor logged)."""
        target = next(c for c in self.review_threads[(repo, pr_number)] if c.id == comment_id)
        return self._add_review_comment(
            repo, pr_number, author, body, target.path, target.line, comment_id
        ).id

    def set_check_runs(self, repo: str, sha: str, runs: Sequence[CheckRun]) -> None:
        """What `check_runs(repo, sha)` answers from now on."""
        self.checks[(repo, sha)] = list(runs)

    def post_as(self, author: str, repo: str, issue_number: int, body: str) -> int:
        """A comment written by someone else (not a call of ours: neither counted nor logged)."""
        comment = Comment(next(self._ids), body, author)
        self.comments[(repo, issue_number)].append(comment)
        return comment.id

    def bot_comments(self, repo: str, issue_number: int) -> list[Comment]:
        """Comments on an issue written by the twin's login."""
        return [c for c in self.comments[(repo, issue_number)] if c.author == self.login]


def blob_sha(text: str) -> str:
    """Git's blob id of `text` (what GitHub reports as a file's `sha`)."""
    data = text.encode()
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()
