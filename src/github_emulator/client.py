"""`EmulatorAdmin`: an async client for the emulator's `/_emulator` admin API."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

#: Admin calls that deliver webhooks wait for the receiver, which may take a while.
ADMIN_TIMEOUT = 30.0


class EmulatorAdminError(Exception):
    """The admin API refused a request (bad setup in a test, usually)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"emulator admin API answered {status}: {body}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class DeliveryInfo:
    """One webhook delivery attempt; a redelivery has the same `id` and a new `seq`."""

    id: str
    seq: int
    event: str
    action: str
    status_code: int | None
    error: str | None
    redelivery: bool
    payload: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeliveryInfo:
        """Parse the admin API's delivery object."""
        return cls(
            id=data["id"],
            seq=data["seq"],
            event=data["event"],
            action=data["action"],
            status_code=data["status_code"],
            error=data["error"],
            redelivery=data["redelivery"],
            payload=data.get("payload"),
        )


@dataclass(frozen=True)
class Acted:
    """The result of acting as a user: the new thing's id/number and the webhooks sent."""

    id: int
    deliveries: list[DeliveryInfo]


@dataclass(frozen=True)
class CommentView:
    """A comment with its author's login."""

    id: int
    body: str
    author: str


@dataclass(frozen=True)
class PullView:
    """The pull-request side of an issue."""

    head: str
    head_label: str
    base: str
    merged: bool
    head_sha: str = ""


@dataclass(frozen=True)
class IssueView:
    """An issue or pull request as the emulator holds it."""

    number: int
    title: str
    body: str
    state: str
    author: str
    labels: list[str]
    comments: list[CommentView]
    pull: PullView | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IssueView:
        """Parse the admin API's issue view."""
        pull = data.get("pull")
        return cls(
            number=data["number"],
            title=data["title"],
            body=data["body"],
            state=data["state"],
            author=data["author"],
            labels=list(data["labels"]),
            comments=[CommentView(**c) for c in data["comments"]],
            pull=None if pull is None else PullView(**pull),
        )


@dataclass(frozen=True)
class Reviewed:
    """A submitted review: its id, its line comments' ids (in order) and the webhooks sent."""

    id: int
    comment_ids: list[int]
    deliveries: list[DeliveryInfo]


@dataclass(frozen=True)
class ReviewView:
    """A review as the emulator holds it; `state` as REST spells it (`CHANGES_REQUESTED`)."""

    id: int
    state: str
    body: str
    author: str


@dataclass(frozen=True)
class ReviewCommentView:
    """A review comment or reply as the emulator holds it."""

    id: int
    review_id: int
    body: str
    author: str
    path: str
    line: int | None
    in_reply_to_id: int | None


@dataclass(frozen=True)
class ChecksCompleted:
    """A completed check suite: its id and overall conclusion, its runs' ids, webhooks sent."""

    id: int
    conclusion: str
    run_ids: list[int]
    deliveries: list[DeliveryInfo]


@dataclass(frozen=True)
class CheckRunView:
    """A check run as the emulator holds it."""

    id: int
    suite_id: int
    name: str
    head_sha: str
    status: str
    conclusion: str | None


@dataclass(frozen=True)
class Pushed:
    """A branch moved: its new head SHA and the `pull_request.synchronize` webhooks sent."""

    sha: str
    deliveries: list[DeliveryInfo]


def _deliveries(data: dict[str, Any]) -> list[DeliveryInfo]:
    return [DeliveryInfo.from_json(d) for d in data["deliveries"]]


@dataclass(frozen=True)
class Counters:
    """Requests per "METHOD /route/{template}" and faults per "kind METHOD /route/{template}"."""

    requests: dict[str, int]
    faults: dict[str, int]
    # Conditional requests answered 304 (GitHub charges none) per "METHOD /route/{template}".
    not_modified: dict[str, int] = field(default_factory=dict)

    def get(self, method: str, template: str) -> int:
        """Requests served for one route, e.g. `get("POST", "/repos/{owner}/{repo}/pulls")`."""
        return self.requests.get(f"{method.upper()} {template}", 0)

    @property
    def mutations(self) -> int:
        """Every non-GET request (App token minting included)."""
        return sum(n for key, n in self.requests.items() if not key.startswith("GET "))

    @property
    def reads(self) -> int:
        """Every GET request."""
        return sum(n for key, n in self.requests.items() if key.startswith("GET "))


def _repo_path(repo: str) -> str:
    owner, _, name = repo.partition("/")
    return f"/_emulator/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


class EmulatorAdmin:
    """Drives an emulator: world setup, acting as users, inspection, faults, webhooks."""

    def __init__(self, base_url: str, *, client: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=ADMIN_TIMEOUT)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client (when this object created it)."""
        if self._own_client:
            await self._client.aclose()

    async def _call(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        response = await self._client.request(
            method, self.base_url + path, json=body, params=params or None
        )
        data = response.json() if response.content else None
        if response.is_error:
            raise EmulatorAdminError(response.status_code, data)
        return data

    async def _acted(self, path: str, body: dict[str, Any]) -> Acted:
        data = await self._call("POST", path, body)
        return Acted(data["id"], [DeliveryInfo.from_json(d) for d in data["deliveries"]])

    # -- world setup -------------------------------------------------------------------

    async def create_repo(
        self,
        full_name: str,
        *,
        default_branch: str = "main",
        clone_url: str | None = None,
        private: bool = False,
    ) -> dict[str, Any]:
        """Create a repository; returns its REST JSON."""
        body = {
            "full_name": full_name,
            "default_branch": default_branch,
            "clone_url": clone_url,
            "private": private,
        }
        data: dict[str, Any] = await self._call("POST", "/_emulator/repos", body)
        return data

    async def rename_repo(self, repo: str, new_full_name: str, *, user: str | None = None) -> Acted:
        """Rename or transfer `repo` to `new_full_name` (as `user`, default its owner): the
        old name's REST URLs answer 301/307 to the new one, webhooks carry the new name and
        the same `repository.id`. `Acted.id` is that id."""
        body = {"full_name": new_full_name, "user": user}
        data = await self._call("POST", f"{_repo_path(repo)}/rename", body)
        return Acted(data["id"], [DeliveryInfo.from_json(d) for d in data["deliveries"]])

    async def create_issue(
        self,
        repo: str,
        title: str,
        *,
        body: str = "",
        author: str = "octocat",
        labels: Sequence[str] = (),
    ) -> int:
        """Open an issue as `author` (sends `issues.opened`); returns its number."""
        payload = {"title": title, "body": body, "author": author, "labels": list(labels)}
        return (await self._acted(f"{_repo_path(repo)}/issues", payload)).id

    async def set_permission(self, repo: str, user: str, permission: str) -> None:
        """Make `user` a collaborator: admin, maintain, write, triage, read, or none."""
        path = f"{_repo_path(repo)}/collaborators/{quote(user, safe='')}"
        await self._call("PUT", path, {"permission": permission})

    async def add_token(self, token: str, login: str) -> None:
        """Accept another token, acting as `login`."""
        await self._call("PUT", f"/_emulator/tokens/{quote(token, safe='')}", {"login": login})

    async def revoke_installation_tokens(self) -> None:
        """Make every minted App installation token answer 401 from now on."""
        await self._call("DELETE", "/_emulator/installation-tokens")

    async def installation_tokens(self) -> list[dict[str, Any]]:
        """Every App installation token minted: installation_id, repositories, permissions."""
        minted: list[dict[str, Any]] = await self._call("GET", "/_emulator/installation-tokens")
        return minted

    async def installation_event(
        self, installation_id: int, action: str, *, repos: list[str] | None = None
    ) -> None:
        """suspend / unsuspend / deleted an installation, or removed / added `repos`:
        the emulator sends the webhook (and refuses a suspended installation's tokens)."""
        path = f"/_emulator/installations/{int(installation_id)}/{action}"
        await self._call("POST", path, {"repos": repos or []})

    # -- acting as a user (webhooks delivered before these return) ----------------------

    async def add_labels(self, repo: str, number: int, *labels: str, user: str) -> Acted:
        """Label an issue as `user`: one `issues.labeled` per new label."""
        path = f"{_repo_path(repo)}/issues/{number}/labels"
        return await self._acted(path, {"user": user, "labels": list(labels)})

    async def add_label(self, repo: str, number: int, label: str, *, user: str) -> Acted:
        """Label an issue as `user` (sends `issues.labeled`)."""
        return await self.add_labels(repo, number, label, user=user)

    async def remove_label(self, repo: str, number: int, label: str, *, user: str) -> Acted:
        """Unlabel an issue as `user` (sends `issues.unlabeled`)."""
        path = f"{_repo_path(repo)}/issues/{number}/labels/{quote(label, safe='')}"
        data = await self._call("DELETE", path, user=user)
        return Acted(data["id"], [DeliveryInfo.from_json(d) for d in data["deliveries"]])

    async def comment(self, repo: str, number: int, body: str, *, user: str) -> Acted:
        """Comment as `user` (sends `issue_comment.created`); `id` is the comment id."""
        path = f"{_repo_path(repo)}/issues/{number}/comments"
        return await self._acted(path, {"user": user, "body": body})

    async def open_pull(
        self,
        repo: str,
        *,
        head: str,
        title: str,
        user: str,
        base: str | None = None,
        body: str = "",
    ) -> Acted:
        """Open a PR as `user` (sends `pull_request.opened`); `id` is its number."""
        payload = {"user": user, "head": head, "title": title, "base": base, "body": body}
        return await self._acted(f"{_repo_path(repo)}/pulls", payload)

    async def merge_pull(self, repo: str, number: int, *, user: str) -> Acted:
        """Merge a PR as `user` (sends `pull_request.closed` with `merged: true`)."""
        return await self._acted(f"{_repo_path(repo)}/pulls/{number}/merge", {"user": user})

    async def submit_review(
        self,
        repo: str,
        number: int,
        *,
        user: str,
        state: str,
        body: str = "",
        comments: Sequence[Mapping[str, Any]] = (),
    ) -> Reviewed:
        """Review a PR as `user`: `state` is `changes_requested`, `commented` or `approved`
        (or the event names `REQUEST_CHANGES`, `COMMENT`, `APPROVE`), `comments` line
        comments `{path, line, body}`. Sends `pull_request_review.submitted`, then one
        `pull_request_review_comment.created` per comment."""
        payload = {"user": user, "state": state, "body": body, "comments": list(comments)}
        data = await self._call("POST", f"{_repo_path(repo)}/pulls/{number}/reviews", payload)
        return Reviewed(data["id"], list(data["comment_ids"]), _deliveries(data))

    async def review_comment(
        self, repo: str, number: int, body: str, *, user: str, path: str, line: int
    ) -> Acted:
        """A single line comment as `user` (GitHub files it in a `COMMENTED` review);
        sends `pull_request_review.submitted` and `pull_request_review_comment.created`."""
        payload = {"user": user, "body": body, "path": path, "line": line}
        return await self._acted(f"{_repo_path(repo)}/pulls/{number}/review-comments", payload)

    async def reply_to_review_comment(
        self, repo: str, number: int, comment_id: int, body: str, *, user: str
    ) -> Acted:
        """Reply as `user` in the thread of review comment `comment_id`; `id` is the reply's."""
        payload = {"user": user, "body": body, "in_reply_to": comment_id}
        return await self._acted(f"{_repo_path(repo)}/pulls/{number}/review-comments", payload)

    async def complete_checks(
        self,
        repo: str,
        sha: str,
        runs: Sequence[Mapping[str, Any]],
        *,
        app: str = "github-actions",
    ) -> ChecksCompleted:
        """Finish a check suite of `app` on commit `sha`. `runs`: `{name, conclusion, title?,
        summary?, text?, annotations?: [{path, start_line, message}]}`. Sends one
        `check_run.completed` per run, then `check_suite.completed` (the most severe
        conclusion wins)."""
        path = f"{_repo_path(repo)}/commits/{quote(sha, safe='')}/check-suites"
        data = await self._call("POST", path, {"runs": list(runs), "app": app})
        return ChecksCompleted(
            data["id"], data["conclusion"], list(data["run_ids"]), _deliveries(data)
        )

    async def push(self, repo: str, branch: str, *, user: str, sha: str | None = None) -> Pushed:
        """Move `branch` to `sha` (a fresh SHA by default), as a `git push` would; open PRs
        from it get the new head and send `pull_request.synchronize`."""
        path = f"{_repo_path(repo)}/branches/{quote(branch, safe='/')}/push"
        data = await self._call("POST", path, {"user": user, "sha": sha})
        return Pushed(data["sha"], _deliveries(data))

    async def put_file(
        self, repo: str, path: str, content: str | None, *, user: str, branch: str | None = None
    ) -> Pushed:
        """Commit `content` at `path` (None: remove it) on `branch` (default: the default
        branch), as a `git push` would: sends `push` naming the file."""
        url = f"{_repo_path(repo)}/contents/{quote(path, safe='/')}"
        data = await self._call("PUT", url, {"user": user, "content": content, "branch": branch})
        return Pushed(data["sha"], _deliveries(data))

    # -- inspection ------------------------------------------------------------------------

    async def state(self) -> dict[str, Any]:
        """Everything: repositories with issues, PRs, comments, labels, refs, collaborators."""
        data: dict[str, Any] = await self._call("GET", "/_emulator/state")
        return data

    async def issue(self, repo: str, number: int) -> IssueView:
        """One issue or PR."""
        return IssueView.from_json(await self._call("GET", f"{_repo_path(repo)}/issues/{number}"))

    async def comments(self, repo: str, number: int) -> list[CommentView]:
        """An issue's comments, oldest first."""
        return (await self.issue(repo, number)).comments

    async def labels(self, repo: str, number: int) -> list[str]:
        """An issue's label names."""
        return (await self.issue(repo, number)).labels

    async def pulls(self, repo: str) -> list[IssueView]:
        """Every PR of the repository, oldest first."""
        data = await self._call("GET", f"{_repo_path(repo)}/pulls")
        return [IssueView.from_json(item) for item in data]

    async def pull_head_sha(self, repo: str, number: int) -> str:
        """The head commit SHA of a PR."""
        pull = (await self.issue(repo, number)).pull
        if pull is None:
            raise EmulatorAdminError(404, f"#{number} is not a pull request")
        return pull.head_sha

    async def reviews(self, repo: str, number: int) -> list[ReviewView]:
        """A PR's reviews, oldest first."""
        data = await self._call("GET", f"{_repo_path(repo)}/pulls/{number}/reviews")
        return [ReviewView(**item) for item in data]

    async def review_comments(self, repo: str, number: int) -> list[ReviewCommentView]:
        """A PR's review comments and replies, ascending id."""
        data = await self._call("GET", f"{_repo_path(repo)}/pulls/{number}/review-comments")
        return [ReviewCommentView(**item) for item in data]

    async def replies(self, repo: str, number: int, comment_id: int) -> list[ReviewCommentView]:
        """The replies in the thread of review comment `comment_id`, oldest first."""
        return [
            c for c in await self.review_comments(repo, number) if c.in_reply_to_id == comment_id
        ]

    async def check_runs(self, repo: str, ref: str) -> list[CheckRunView]:
        """Every check run on a commit (SHA or branch), oldest first, superseded ones too."""
        path = f"{_repo_path(repo)}/commits/{quote(ref, safe='/')}/check-runs"
        return [CheckRunView(**item) for item in await self._call("GET", path)]

    async def counters(self) -> Counters:
        """Request and fault counters since start or the last reset."""
        data = await self._call("GET", "/_emulator/counters")
        return Counters(
            requests=data["requests"],
            faults=data["faults"],
            not_modified=data.get("not_modified", {}),
        )

    async def reset_counters(self) -> None:
        """Zero the counters."""
        await self._call("DELETE", "/_emulator/counters")

    # -- faults ----------------------------------------------------------------------------

    async def add_fault(
        self,
        method: str,
        path: str,
        kind: str,
        *,
        times: int | None = 1,
        seconds: float = 1.0,
        retry_after: int | None = 1,
        status: int = 403,
        apply: bool = True,
    ) -> int:
        """Inject a fault (see `faults.py` for the kinds); `path` is a regex. Returns its id."""
        body = {
            "method": method,
            "path": path,
            "kind": kind,
            "times": times,
            "seconds": seconds,
            "retry_after": retry_after,
            "status": status,
            "apply": apply,
        }
        data = await self._call("POST", "/_emulator/faults", body)
        return int(data["id"])

    async def faults(self) -> list[dict[str, Any]]:
        """Active rules with how often each fired."""
        data: list[dict[str, Any]] = await self._call("GET", "/_emulator/faults")
        return data

    async def clear_faults(self) -> None:
        """Remove every fault rule."""
        await self._call("DELETE", "/_emulator/faults")

    # -- webhooks ----------------------------------------------------------------------------

    async def configure_webhooks(self, url: str | None, secret: str | None) -> None:
        """Send webhooks to `url` signed with `secret` (None turns them off)."""
        await self._call("PUT", "/_emulator/webhooks", {"url": url, "secret": secret})

    async def deliveries(self) -> list[DeliveryInfo]:
        """Every delivery attempt so far, with payloads."""
        data = await self._call("GET", "/_emulator/webhooks/deliveries")
        return [DeliveryInfo.from_json(item) for item in data]

    async def redeliver(self, delivery_id: str, *, concurrent: int = 1) -> list[DeliveryInfo]:
        """Resend a delivery with the same id; `concurrent=2` sends two copies at once."""
        path = f"/_emulator/webhooks/deliveries/{quote(delivery_id, safe='')}/redeliver"
        data = await self._call("POST", path, {"concurrent": concurrent})
        return [DeliveryInfo.from_json(item) for item in data]

    async def send_webhook(
        self, event: str, payload: dict[str, Any], *, signature: str = "valid"
    ) -> DeliveryInfo:
        """Deliver any payload; `signature` is valid, sha1_only, invalid or none."""
        body = {"event": event, "payload": payload, "signature": signature}
        return DeliveryInfo.from_json(await self._call("POST", "/_emulator/webhooks/send", body))

    async def wait_webhooks(self) -> None:
        """Return once deliveries caused by REST calls have been answered."""
        await self._call("POST", "/_emulator/webhooks/wait")
