"""`GitHubForge`: the `Forge` protocol over GitHub's REST API (github.com, GHES, or the emulator).

Built on plain `httpx` (see `http.py` for the request loop and the reasons).
Mutations raise `UncertainOutcome` when GitHub may have applied them and
`GitHubApiError` (a `ForgeError`) when it refused; the answers that mean
"already done" (absent label, existing PR, existing ref with the same SHA)
count as success, so the effect ledger can simply perform again.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self, cast, get_args
from urllib.parse import quote

import httpx

from agent_workflow.core.errors import ForgeError, UncertainOutcome
from agent_workflow.core.ports import (
    CheckRun,
    Comment,
    HookDelivery,
    HookRequest,
    LabelActor,
    Permission,
    PullRequest,
    RepoFile,
    ReviewComment,
)
from agent_workflow.forge.auth import AppAuth, InstallationHint, TokenAuth
from agent_workflow.forge.http import (
    ForgeStats,
    GitHubApiError,
    GitHubHttp,
    MutationSpacer,
)
from agent_workflow.forge.policy import RequestPolicy

#: GitHub's largest page; fewer round trips when reconciling.
PER_PAGE = 100

#: Annotations read per failing check run: the first ones say what broke; a linter
#: run can carry thousands, and each page is a request.
MAX_ANNOTATIONS = 50
#: A check run's `output.text` (where CI puts a log excerpt) kept, its last characters:
#: a log's end says what failed, and the whole thing goes into the agent's prompt.
MAX_CHECK_TEXT = 4000
#: The other text of a check run (title, summary, an annotation's message) kept.
MAX_CHECK_FIELD = 1000
#: Conclusions whose runs are failures worth reading the annotations of.
FAILED_CONCLUSIONS = frozenset({"failure", "timed_out"})

_PERMISSIONS: tuple[str, ...] = get_args(Permission)


def _split(repo: str) -> tuple[str, str]:
    owner, _, name = repo.partition("/")
    if not owner or not name or "/" in name:
        raise ValueError(f"repository must be 'owner/name', got {repo!r}")
    return owner, name


def _repo_path(repo: str) -> str:
    owner, name = _split(repo)
    return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


def _pull(data: dict[str, Any]) -> PullRequest:
    """A PR from either shape: list items lack `merged` and only carry `merged_at`."""
    merged = bool(data.get("merged")) or data.get("merged_at") is not None
    return PullRequest(
        number=int(data["number"]),
        head=str(data["head"]["ref"]),
        state=str(data["state"]),
        merged=merged,
        url=str(data.get("html_url", "")),
        author=_login(data),
        draft=bool(data.get("draft", False)),
    )


def _review_comment(data: dict[str, Any]) -> ReviewComment:
    line = data.get("line")
    reply_to = data.get("in_reply_to_id")
    return ReviewComment(
        id=int(data["id"]),
        body=str(data.get("body") or ""),
        author=_login(data),
        path=str(data.get("path") or ""),
        line=None if line is None else int(line),
        diff_hunk=str(data.get("diff_hunk") or ""),
        in_reply_to_id=None if reply_to is None else int(reply_to),
    )


def _head(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def _annotation(data: dict[str, Any]) -> str:
    """`path:line: message`, one line."""
    message = " ".join(str(data.get("message") or "").split())
    return f"{data.get('path', '')}:{data.get('start_line', '')}: {_head(message, MAX_CHECK_FIELD)}"


class GitHubForge:
    """The `Forge` protocol over REST, plus `create_ref`/`get_ref_sha` for branches."""

    def __init__(self, http: GitHubHttp) -> None:
        self.http = http

    @classmethod
    def from_token(
        cls,
        token: str,
        *,
        base_url: str,
        policy: RequestPolicy,
        spacer: MutationSpacer | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> GitHubForge:
        """An adapter acting with a fixed token."""
        http = GitHubHttp(
            TokenAuth(token), base_url=base_url, policy=policy, spacer=spacer, transport=transport
        )
        return cls(http)

    @classmethod
    def from_app(
        cls,
        app_id: int | str,
        private_key_pem: str,
        installation_id: int | None = None,
        *,
        base_url: str,
        policy: RequestPolicy,
        spacer: MutationSpacer | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        hint: InstallationHint | None = None,
    ) -> GitHubForge:
        """An adapter acting as a GitHub App: each repository's calls carry its own
        installation's token (minted and cached per installation, see `AppAuth`);
        `installation_id` is the fixed one, if configured."""
        auth = AppAuth(app_id, private_key_pem, installation_id, hint=hint)
        http = GitHubHttp(
            auth, base_url=base_url, policy=policy, spacer=spacer, transport=transport
        )
        return cls(http)

    @property
    def stats(self) -> ForgeStats:
        """Requests sent so far, by kind."""
        return self.http.stats

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- mutations ------------------------------------------------------------------------

    async def create_comment(self, repo: str, issue_number: int, body: str) -> int:
        """Post a comment; return its id."""
        path = f"{_repo_path(repo)}/issues/{issue_number}/comments"
        response = await self.http.request("POST", path, json={"body": body})
        return int(_created(response)["id"])

    async def add_labels(self, repo: str, issue_number: int, labels: Sequence[str]) -> None:
        """Add labels (GitHub creates missing ones; present ones are a no-op)."""
        if not labels:
            return
        path = f"{_repo_path(repo)}/issues/{issue_number}/labels"
        response = await self.http.request("POST", path, json={"labels": list(labels)})
        _created(response)

    async def remove_label(self, repo: str, issue_number: int, label: str) -> None:
        """Remove a label; 404 "Label does not exist" is success, a missing issue is not."""
        path = f"{_repo_path(repo)}/issues/{issue_number}/labels/{quote(label, safe='')}"
        response = await self.http.request("DELETE", path)
        if response.status_code == 404:
            error = GitHubApiError.from_response(response)
            if error.mentions("Label does not exist"):
                return
            raise error
        _created(response)

    async def open_pull_request(
        self, repo: str, *, head: str, base: str, title: str, body: str, draft: bool = False
    ) -> PullRequest:
        """Open a PR (a draft if asked); "A pull request already exists" adopts it."""
        payload = {"title": title, "head": head, "base": base, "body": body, "draft": draft}
        response = await self.http.request("POST", f"{_repo_path(repo)}/pulls", json=payload)
        if response.status_code == 422:
            error = GitHubApiError.from_response(response)
            if not error.mentions("A pull request already exists"):
                raise error
            existing = await self.find_pull_request(repo, head)
            if existing is None:
                raise ForgeError(f"{error} but no pull request from {head!r} was found") from error
            return existing
        return _pull(_created(response))

    async def reply_to_review_comment(
        self, repo: str, pr_number: int, comment_id: int, body: str
    ) -> int:
        """Reply in the thread of review comment `comment_id` (a thread's first comment:
        GitHub refuses a reply to a reply with 422); return the reply's id."""
        path = f"{_repo_path(repo)}/pulls/{pr_number}/comments/{comment_id}/replies"
        response = await self.http.request("POST", path, json={"body": body})
        return int(_created(response)["id"])

    async def edit_comment(self, repo: str, comment_id: int, body: str) -> None:
        """Replace an issue comment's body (only our own: others' answer 403)."""
        path = f"{_repo_path(repo)}/issues/comments/{comment_id}"
        _created(await self.http.request("PATCH", path, json={"body": body}))

    async def create_ref(self, repo: str, ref: str, sha: str) -> None:
        """Create `refs/heads/...`; an existing ref at the same SHA counts as success."""
        payload = {"ref": ref, "sha": sha}
        response = await self.http.request("POST", f"{_repo_path(repo)}/git/refs", json=payload)
        if response.status_code == 422:
            error = GitHubApiError.from_response(response)
            if not error.mentions("Reference already exists"):
                raise error
            current = await self.get_ref_sha(repo, ref)
            if current != sha:
                raise ForgeError(f"{ref} already exists at {current}, not {sha}") from error
            return
        _created(response)

    # -- reads ------------------------------------------------------------------------------

    async def get_ref_sha(self, repo: str, ref: str) -> str | None:
        """The SHA `refs/heads/...` points at, None when it does not exist."""
        short = ref.removeprefix("refs/")
        response = await self.http.request("GET", f"{_repo_path(repo)}/git/ref/{short}")
        if response.status_code == 404:
            return None
        return str(_ok(response)["object"]["sha"])

    async def list_comments(self, repo: str, issue_number: int) -> list[Comment]:
        """All comments of an issue, oldest first, following `Link: rel="next"`."""
        path = f"{_repo_path(repo)}/issues/{issue_number}/comments"
        return [
            Comment(id=int(item["id"]), body=str(item.get("body") or ""), author=_login(item))
            async for item in self._pages(path, {"per_page": PER_PAGE})
        ]

    async def review_comments(
        self, repo: str, pr_number: int, review_id: int
    ) -> list[ReviewComment]:
        """The line comments of one review, following `Link: rel="next"`."""
        path = f"{_repo_path(repo)}/pulls/{pr_number}/reviews/{review_id}/comments"
        return [_review_comment(item) async for item in self._pages(path, {"per_page": PER_PAGE})]

    async def list_review_comments(self, repo: str, pr_number: int) -> list[ReviewComment]:
        """Every review comment of a PR, replies included, in ascending id."""
        path = f"{_repo_path(repo)}/pulls/{pr_number}/comments"
        return [_review_comment(item) async for item in self._pages(path, {"per_page": PER_PAGE})]

    async def check_runs(self, repo: str, sha: str) -> list[CheckRun]:
        """The latest check run of each name on commit `sha`; failed and timed-out ones
        with their first `MAX_ANNOTATIONS` annotations. Text is capped (see the constants)."""
        path = f"{_repo_path(repo)}/commits/{quote(sha, safe='')}/check-runs"
        runs = []
        async for item in self._pages(path, {"per_page": PER_PAGE}, key="check_runs"):
            conclusion = item.get("conclusion")
            annotations: tuple[str, ...] = ()
            if conclusion in FAILED_CONCLUSIONS:
                annotations = await self._annotations(repo, int(item["id"]))
            output = item.get("output") or {}
            runs.append(
                CheckRun(
                    id=int(item["id"]),
                    name=str(item.get("name") or ""),
                    status=str(item.get("status") or ""),
                    conclusion=None if conclusion is None else str(conclusion),
                    title=_head(str(output.get("title") or ""), MAX_CHECK_FIELD),
                    summary=_head(str(output.get("summary") or ""), MAX_CHECK_FIELD),
                    text=_tail(str(output.get("text") or ""), MAX_CHECK_TEXT),
                    annotations=annotations,
                )
            )
        return runs

    async def file_contents(
        self, repo: str, path: str, ref: str, *, etag: str | None = None
    ) -> RepoFile | None:
        """`GET …/contents/{path}?ref=`: the file (base64 decoded), None when absent (404, or
        not a file); with `etag`, conditional: 304 is `unchanged` and costs no rate limit."""
        url = f"{_repo_path(repo)}/contents/{quote(path, safe='/')}"
        headers = {"if-none-match": etag} if etag else None
        response = await self.http.request("GET", url, params={"ref": ref}, headers=headers)
        if response.status_code == 304:
            return RepoFile(etag=response.headers.get("etag") or etag or "", unchanged=True)
        if response.status_code == 404:
            return None
        data = _ok(response)
        if not isinstance(data, dict) or data.get("type") != "file":
            return None
        if data.get("encoding") != "base64":  # GitHub leaves files over 1 MB out
            raise ForgeError(f"{path} on {ref} in {repo} came without its content")
        try:
            text = base64.b64decode(str(data.get("content") or "")).decode("utf-8", "replace")
        except ValueError as exc:
            raise ForgeError(f"{path} on {ref} in {repo}: unreadable content") from exc
        return RepoFile(etag=response.headers.get("etag", ""), text=text, sha=str(data["sha"]))

    async def _annotations(self, repo: str, run_id: int) -> tuple[str, ...]:
        """The first `MAX_ANNOTATIONS` annotations of a check run, as `path:line: message`."""
        path = f"{_repo_path(repo)}/check-runs/{run_id}/annotations"
        found: list[str] = []
        pages = self._pages(path, {"per_page": MAX_ANNOTATIONS})
        async with contextlib.aclosing(pages):
            async for item in pages:
                found.append(_annotation(item))
                if len(found) >= MAX_ANNOTATIONS:
                    break
        return tuple(found)

    async def find_pull_request(self, repo: str, head: str) -> PullRequest | None:
        """The PR from `head` in any state: the open one if any, else the newest."""
        owner, _ = _split(repo)
        head_owner, _, branch = head.rpartition(":")
        # GitHub ignores a `head` filter without the owner prefix and lists every PR.
        query: dict[str, str | int] = {
            "head": f"{head_owner or owner}:{branch}",
            "state": "all",
            "per_page": PER_PAGE,
        }
        found = [
            _pull(item)
            async for item in self._pages(f"{_repo_path(repo)}/pulls", query)
            if item["head"]["ref"] == branch  # guards against an ignored filter
        ]
        if not found:
            return None
        found.sort(key=lambda pr: (pr.state == "open", pr.number), reverse=True)
        return found[0]

    async def permission(self, repo: str, user: str) -> Permission:
        """The user's role (admin, maintain, write, triage, read, none).

        An unknown user or repository (404) is `none`: trust fails closed. Not cached
        here: the core's `Trust` caches answers (`AW_PERMISSION_TTL_S`), in one place.
        """
        path = f"{_repo_path(repo)}/collaborators/{quote(user, safe='')}/permission"
        response = await self.http.request("GET", path)
        if response.status_code == 404:
            value: Permission = "none"
        else:
            data = _ok(response)
            role, collapsed = data.get("role_name"), data.get("permission")
            # role_name is finer (maintain, triage); custom roles fall back to `permission`.
            value = cast(Permission, role if role in _PERMISSIONS else collapsed)
            if value not in _PERMISSIONS:
                value = "none"
        return value

    async def whoami(self) -> str:
        """Our own login: `GET /user` with a token; `GET /app` (as the App) → `<slug>[bot]`."""
        auth = self.http.auth
        if isinstance(auth, AppAuth):
            response = await self.http.request(
                "GET", "/app", authorization=f"Bearer {auth.app_jwt()}"
            )
            slug = str(_ok(response).get("slug") or "")
            if not slug:
                raise ForgeError("GET /app answered without the App's slug")
            return f"{slug}[bot]"
        login = str(_ok(await self.http.request("GET", "/user")).get("login") or "")
        if not login:
            raise ForgeError("GET /user answered without a login")
        return login

    # -- the hook-deliveries log and reconciliation (`HookLog`) ---------------------------

    def _app_authorization(self) -> str:
        auth = self.http.auth
        if not isinstance(auth, AppAuth):
            raise ForgeError("the App's hook deliveries need GitHub App credentials")
        return f"Bearer {auth.app_jwt()}"

    @staticmethod
    def _hook_path(hook: tuple[str, int] | None) -> str:
        if hook is None:
            return "/app/hook/deliveries"
        return f"{_repo_path(hook[0])}/hooks/{int(hook[1])}/deliveries"

    async def hook_deliveries(self, hook: tuple[str, int] | None) -> AsyncIterator[HookDelivery]:
        """Every attempt of the App's webhook (`hook` None, App JWT) or of a repository's
        (token), newest first; pages (GitHub's `cursor` in the `Link: rel="next"`) are read
        only as far as the caller iterates."""
        query: dict[str, str | int] = {"per_page": PER_PAGE}
        async for item in self._pages(self._hook_path(hook), query, as_app=hook is None):
            try:
                yield HookDelivery(
                    id=int(item["id"]),
                    guid=str(item["guid"]),
                    delivered_at=datetime.fromisoformat(item["delivered_at"]).timestamp(),
                    status_code=int(item.get("status_code") or 0),
                    event=str(item.get("event") or ""),
                    redelivery=bool(item.get("redelivery")),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ForgeError(f"unexpected hook delivery: {item!r:.200}") from exc

    async def hook_delivery(self, hook: tuple[str, int] | None, delivery_id: int) -> HookRequest:
        """One attempt's request: `request.headers` and `request.payload`."""
        authorization = self._app_authorization() if hook is None else None
        path = f"{self._hook_path(hook)}/{int(delivery_id)}"
        data = _ok(await self.http.request("GET", path, authorization=authorization))
        request = data.get("request") if isinstance(data, dict) else None
        headers = request.get("headers") if isinstance(request, dict) else None
        payload = request.get("payload") if isinstance(request, dict) else None
        if not isinstance(headers, dict) or not isinstance(payload, dict):
            raise ForgeError(f"hook delivery {delivery_id} has no request headers and payload")
        return HookRequest({str(k): str(v) for k, v in headers.items()}, payload)

    async def app_repositories(self) -> list[dict[str, Any]]:
        """The repositories of every installation of the App (`GET /app/installations`, App
        JWT, then each one's `GET /installation/repositories` with its own token); with a
        fixed token, that token's installation's."""
        auth = self.http.auth
        if not isinstance(auth, AppAuth) or auth.installation_id is not None:
            return await self._installation_repositories(None)
        found: list[dict[str, Any]] = []
        async for item in self._pages("/app/installations", {"per_page": PER_PAGE}, as_app=True):
            if isinstance(item, dict) and item.get("suspended_at") is None:
                found.extend(await self._installation_repositories(int(item["id"])))
        return found

    async def _installation_repositories(self, installation: int | None) -> list[dict[str, Any]]:
        """`GET /installation/repositories` with `installation`'s token (None: the fixed
        one); each repository's installation is remembered on the way."""
        query: dict[str, str | int] = {"per_page": PER_PAGE}
        pages = self._pages(
            "/installation/repositories", query, key="repositories", installation=installation
        )
        found = [item async for item in pages]
        auth = self.http.auth
        if installation is not None and isinstance(auth, AppAuth):
            for item in found:
                if isinstance(item, dict) and item.get("full_name"):
                    auth.remember(str(item["full_name"]), installation)
        return found

    async def repository(self, repo: str) -> dict[str, Any]:
        """`GET /repos/{owner}/{repo}`."""
        data = _ok(await self.http.request("GET", _repo_path(repo)))
        if not isinstance(data, dict):
            raise ForgeError(f"unexpected repository answer for {repo}")
        return data

    async def open_issues_labeled(self, repo: str, label: str) -> AsyncIterator[dict[str, Any]]:
        """Open issues carrying `label` (the issues list also holds pull requests: skipped)."""
        query: dict[str, str | int] = {"state": "open", "labels": label, "per_page": PER_PAGE}
        async for item in self._pages(f"{_repo_path(repo)}/issues", query):
            if isinstance(item, dict) and item.get("pull_request") is None:
                yield item

    async def label_actor(self, repo: str, issue_number: int, label: str) -> LabelActor | None:
        """The latest `labeled` event of `label` in the issue's events, with its actor."""
        found: LabelActor | None = None
        path = f"{_repo_path(repo)}/issues/{int(issue_number)}/events"
        async for item in self._pages(path, {"per_page": PER_PAGE}):
            name = ((item.get("label") or {}).get("name") or "") if isinstance(item, dict) else ""
            actor = item.get("actor") if isinstance(item, dict) else None
            if (
                item.get("event") == "labeled"
                and name.casefold() == label.casefold()
                and isinstance(actor, dict)
                and actor.get("login")
            ):
                found = LabelActor(int(item["id"]), actor)
        return found

    async def push_token(self, repo: str) -> str:
        """The token for `git push` to `repo`: with an App, an installation token narrowed
        to that repository and `contents: write`; with a fixed token, that token."""
        return await self.http.auth.push_token(self.http, repo)

    async def _pages(
        self,
        path: str,
        params: dict[str, str | int],
        *,
        key: str | None = None,
        as_app: bool = False,
        installation: int | None = None,
    ) -> AsyncGenerator[Any, None]:
        """Items of a paginated list, following `Link: rel="next"` (on our host only).

        `key` names the list inside an object answer (`check_runs` of `{total_count, ...}`).
        `as_app`: each page is asked with a fresh App JWT (the App's own endpoints);
        `installation`: with that installation's token (no repository in the path names it).
        """
        url: str | httpx.URL = path
        query: dict[str, str | int] | None = params
        while True:
            authorization = self._app_authorization() if as_app else None
            if installation is not None and isinstance(self.http.auth, AppAuth):
                authorization = await self.http.auth.installation_authorization(
                    self.http, installation
                )
            response = await self.http.request(
                "GET", url, params=query, authorization=authorization
            )
            page = _ok(response)
            if key is not None and isinstance(page, dict):
                page = page.get(key)
            if not isinstance(page, list):
                raise ForgeError(f"expected a list from {response.request.url}")
            for item in page:
                yield item
            next_url = response.links.get("next", {}).get("url")
            if not next_url:
                return
            if not self.http.same_origin(next_url):
                raise ForgeError(f"refusing to follow a pagination link off-site: {next_url}")
            url, query = httpx.URL(next_url), None


def _login(item: dict[str, Any]) -> str:
    user = item.get("user") or {}
    return str(user.get("login", ""))


def _ok(response: httpx.Response) -> Any:
    """The JSON of a successful read; GitHub's error otherwise."""
    if not response.is_success:
        raise GitHubApiError.from_response(response)
    return response.json()


def _created(response: httpx.Response) -> Any:
    """The JSON of a successful mutation.

    A 2xx whose body we cannot read still means "applied": the caller must
    reconcile to learn the id, so that is an uncertain outcome, not an error.
    """
    if response.is_success:
        try:
            return response.json()
        except ValueError as exc:
            raise UncertainOutcome(
                f"{response.request.method} {response.request.url} → "
                f"{response.status_code} with an unreadable body"
            ) from exc
    raise GitHubApiError.from_response(response)
