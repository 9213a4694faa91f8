"""Credentials for the GitHub adapter: a fixed token, or a GitHub App's installation tokens."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

import httpx
import jwt

from agent_workflow.core.errors import ForgeError
from agent_workflow.forge.http import GitHubApiError, GitHubHttp

#: Refresh an installation token this long before it expires, so no request
#: carries a token that dies in flight (GitHub's tokens live one hour).
REFRESH_MARGIN = 300.0
#: Backdate the JWT's `iat` against clock drift, as GitHub recommends.
JWT_BACKDATE = 60
#: JWT lifetime; GitHub refuses more than 10 minutes.
JWT_LIFETIME = 540
#: What a push token may do: write the repository's contents, nothing else.
PUSH_PERMISSIONS = {"contents": "write"}
#: Narrowed push tokens kept at once (one per repository pushed to recently).
PUSH_TOKEN_CACHE = 256
#: Installation tokens kept at once (one per installation acted for recently); an
#: organisation-wide deployment has one per account, and a dropped one is simply re-minted.
INSTALLATION_TOKEN_CACHE = 256
#: Repositories whose installation is remembered at once (least recently used dropped).
INSTALLATION_CACHE = 4096
#: How long a repository's installation is trusted before it is asked again (from the
#: tasks table, else GitHub): a repository moved to another installation is followed.
INSTALLATION_TTL = 3600.0

#: Where a repository's installation is recorded (the tasks table): None when unknown.
InstallationHint = Callable[[str], Awaitable[int | None]]


class TokenAuth:
    """A personal access token or any fixed token."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    async def authorization(self, http: GitHubHttp, url: httpx.URL | None = None) -> str:
        """The same header every time."""
        return self._header

    def invalidate(self, url: httpx.URL | None = None, http: GitHubHttp | None = None) -> None:
        """Nothing to refresh: a fixed token that is refused stays refused."""

    async def push_token(self, http: GitHubHttp, repo: str) -> str:
        """The token a `git push` to `repo` gets: the same fixed token."""
        return self._header.removeprefix("Bearer ")


class AppAuth:
    """A GitHub App with any number of installations: an RS256 JWT buys an installation
    token, minted per installation and cached until `refresh_margin` before it expires (or
    half its lifetime, if that is shorter).

    A request is made with the token of the installation its repository belongs to (the
    repository is read from the request's `/repos/{owner}/{name}` path). The installation
    of a repository comes from, in order: this process's map (`remember`, what events and
    tasks said), `hint` (the tasks table: the installation the task's last event named),
    the fixed `installation_id` (`AW_GITHUB_INSTALLATION_ID`, when set), and GitHub's
    `GET /repos/{owner}/{repo}/installation` (App JWT). Requests naming no repository use
    the fixed installation, or the only one this process knows.

    `clock` decides freshness only (tests move it); the JWT always carries wall-clock
    times, because GitHub checks them against its own.
    """

    def __init__(
        self,
        app_id: int | str,
        private_key_pem: str,
        installation_id: int | None = None,
        *,
        refresh_margin: float = REFRESH_MARGIN,
        clock: Callable[[], float] = time.time,
        hint: InstallationHint | None = None,
    ) -> None:
        self.app_id = app_id
        self.installation_id = installation_id
        self.refresh_margin = refresh_margin
        self._key = private_key_pem
        self._clock = clock
        self._hint = hint
        self._lock = asyncio.Lock()
        # Per installation: (token, refresh at); the least recently used dropped past the bound.
        self._tokens: OrderedDict[int, tuple[str, float]] = OrderedDict()
        # Per repository (`owner/name`, lower case): its installation, and until when to trust it.
        self._installations: OrderedDict[str, tuple[int, float]] = OrderedDict()
        # Per repository: (token, refresh at); the oldest is dropped beyond the bound.
        self._push_tokens: OrderedDict[str, tuple[str, float]] = OrderedDict()

    @property
    def refresh_at(self) -> float:
        """When (by `clock`) the most recently minted token will be replaced; 0 before any."""
        return next(reversed(self._tokens.values()))[1] if self._tokens else 0.0

    def app_jwt(self) -> str:
        """A fresh App JWT (`iss` = app id, backdated `iat`, 9-minute `exp`)."""
        now = int(time.time())
        # PyJWT wants `iss` as a string; GitHub accepts the app id or client id as one.
        claims = {"iat": now - JWT_BACKDATE, "exp": now + JWT_LIFETIME, "iss": str(self.app_id)}
        return jwt.encode(claims, self._key, algorithm="RS256")

    def remember(self, repo: str, installation_id: int) -> None:
        """`repo` belongs to `installation_id` (an event or a task said so)."""
        key = repo.lower()
        self._installations[key] = (installation_id, self._clock() + INSTALLATION_TTL)
        self._installations.move_to_end(key)
        while len(self._installations) > INSTALLATION_CACHE:
            self._installations.popitem(last=False)

    async def authorization(self, http: GitHubHttp, url: httpx.URL | None = None) -> str:
        """`Bearer <installation token>` of the installation `url`'s repository belongs to,
        minting one when none is fresh."""
        installation = await self.installation_for(http, repository_of(http, url))
        return await self.installation_authorization(http, installation)

    async def installation_authorization(self, http: GitHubHttp, installation: int) -> str:
        """`Bearer <token>` of `installation`, minted when none is fresh."""
        async with self._lock:  # one mint at a time; waiters reuse its token
            cached = self._tokens.get(installation)
            if cached is None or self._clock() >= cached[1]:
                cached = await self._request_token(http, installation, None)
                self._tokens[installation] = cached
                while len(self._tokens) > INSTALLATION_TOKEN_CACHE:
                    self._tokens.popitem(last=False)
            self._tokens.move_to_end(installation)
            return f"Bearer {cached[0]}"

    def invalidate(self, url: httpx.URL | None = None, http: GitHubHttp | None = None) -> None:
        """Drop the cached token GitHub answered 401 to (and the repository's installation,
        which may have changed): the next request mints again."""
        repo = repository_of(http, url)
        known = self._installations.pop(repo.lower(), None) if repo else None
        if known is not None:
            self._tokens.pop(known[0], None)
        else:
            self._tokens.clear()

    async def installation_for(self, http: GitHubHttp, repo: str | None) -> int:
        """The installation whose token acts on `repo` (see the class docstring)."""
        if repo is None:
            return self._unscoped()
        cached = self._installations.get(repo.lower())
        if cached is not None and self._clock() < cached[1]:
            return cached[0]
        found = await self._hint(repo) if self._hint is not None else None
        if found is None:
            found = self.installation_id
        if found is None:
            found = await self._lookup(http, repo)
        self.remember(repo, found)
        return found

    def _unscoped(self) -> int:
        if self.installation_id is not None:
            return self.installation_id
        known = {installation for installation, _ in self._installations.values()}
        if len(known) == 1:
            return known.pop()
        raise ForgeError(
            "a request naming no repository needs AW_GITHUB_INSTALLATION_ID "
            f"({len(known)} installations known)"
        )

    async def _lookup(self, http: GitHubHttp, repo: str) -> int:
        """`GET /repos/{owner}/{repo}/installation` with the App JWT."""
        owner, _, name = repo.partition("/")
        path = f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}/installation"
        response = await http.request("GET", path, authorization=f"Bearer {self.app_jwt()}")
        if not response.is_success:
            raise GitHubApiError.from_response(response)
        try:
            return int(response.json()["id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ForgeError(f"unexpected installation answer: {response.text[:200]}") from exc

    async def push_token(self, http: GitHubHttp, repo: str) -> str:
        """A token for `git push` to `repo` (`owner/name`) alone, with `contents: write` and
        nothing else, minted by the repository's installation: what a push carries into a
        worktree the agent wrote cannot open issues, approve PRs or reach another
        repository. Cached per repository."""
        installation = await self.installation_for(http, repo)
        async with self._lock:
            cached = self._push_tokens.get(repo)
            if cached is not None and self._clock() < cached[1]:
                self._push_tokens.move_to_end(repo)
                return cached[0]
            narrowed = {"repositories": [repo.partition("/")[2]], "permissions": PUSH_PERMISSIONS}
            minted = await self._request_token(http, installation, narrowed)
            self._push_tokens[repo] = minted
            while len(self._push_tokens) > PUSH_TOKEN_CACHE:
                self._push_tokens.popitem(last=False)
            return minted[0]

    async def _request_token(
        self, http: GitHubHttp, installation: int, narrowed: Any
    ) -> tuple[str, float]:
        """Mint an installation token (narrowed as asked); returns it and when to refresh it."""
        path = f"/app/installations/{int(installation)}/access_tokens"
        response = await http.request(
            "POST", path, json=narrowed, kind="token", authorization=f"Bearer {self.app_jwt()}"
        )
        if response.status_code != 201:
            raise GitHubApiError.from_response(response)
        try:
            body = response.json()
            token, expires = str(body["token"]), datetime.fromisoformat(body["expires_at"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ForgeError(f"unexpected access token answer: {response.text[:200]}") from exc
        now, expires_at = self._clock(), expires.timestamp()
        margin = min(self.refresh_margin, max(expires_at - now, 0.0) / 2)
        return token, expires_at - margin


def repository_of(http: GitHubHttp | None, url: httpx.URL | None) -> str | None:
    """`owner/name` of a `/repos/{owner}/{name}/…` URL under the base URL; None otherwise."""
    if http is None or url is None:
        return None
    base = http.base_url.path
    path = url.path
    if not path.startswith(base):
        return None
    parts = path[len(base) :].split("/")
    if len(parts) < 3 or parts[0] != "repos" or not parts[1] or not parts[2]:
        return None
    return f"{unquote(parts[1])}/{unquote(parts[2])}"
