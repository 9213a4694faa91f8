"""`GitHubForge`: the `Forge` protocol over GitHub's REST API (github.com, GHES, or the emulator).

Built on plain `httpx` (see `http.py` for the request loop and the reasons).
Mutations raise `UncertainOutcome` when GitHub may have applied them and
`GitHubApiError` (a `ForgeError`) when it refused; the answers that mean
"already done" (absent label, existing PR, existing ref with the same SHA)
count as success, so the effect ledger can simply perform again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, Self, cast, get_args
from urllib.parse import quote

import httpx

from agent_workflow.core.errors import ForgeError, UncertainOutcome
from agent_workflow.core.ports import Comment, Permission, PullRequest
from agent_workflow.forge.auth import AppAuth, TokenAuth
from agent_workflow.forge.http import (
    ForgeStats,
    GitHubApiError,
    GitHubHttp,
    MutationSpacer,
)
from agent_workflow.forge.policy import RequestPolicy

#: GitHub's largest page; fewer round trips when reconciling.
PER_PAGE = 100

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
    )


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
        installation_id: int,
        *,
        base_url: str,
        policy: RequestPolicy,
        spacer: MutationSpacer | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> GitHubForge:
        """An adapter acting as a GitHub App installation (tokens minted and cached)."""
        auth = AppAuth(app_id, private_key_pem, installation_id)
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
        self, repo: str, *, head: str, base: str, title: str, body: str
    ) -> PullRequest:
        """Open a PR; "A pull request already exists" adopts the existing one."""
        payload = {"title": title, "head": head, "base": base, "body": body}
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

    async def push_token(self, repo: str) -> str:
        """The token for `git push` to `repo`: with an App, an installation token narrowed
        to that repository and `contents: write`; with a fixed token, that token."""
        return await self.http.auth.push_token(self.http, repo)

    async def _pages(self, path: str, params: dict[str, str | int]) -> AsyncIterator[Any]:
        """Items of a paginated list, following `Link: rel="next"` (on our host only)."""
        url: str | httpx.URL = path
        query: dict[str, str | int] | None = params
        while True:
            response = await self.http.request("GET", url, params=query)
            page = _ok(response)
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
