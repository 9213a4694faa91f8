"""Credentials for the GitHub adapter: a fixed token, or a GitHub App's installation tokens."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any

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


class TokenAuth:
    """A personal access token or any fixed token."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    async def authorization(self, http: GitHubHttp) -> str:
        """The same header every time."""
        return self._header

    def invalidate(self) -> None:
        """Nothing to refresh: a fixed token that is refused stays refused."""

    async def push_token(self, http: GitHubHttp, repo: str) -> str:
        """The token a `git push` to `repo` gets: the same fixed token."""
        return self._header.removeprefix("Bearer ")


class AppAuth:
    """A GitHub App installation: an RS256 JWT buys an installation token, cached until
    `refresh_margin` before it expires (or half its lifetime, if that is shorter).

    `clock` decides freshness only (tests move it); the JWT always carries wall-clock
    times, because GitHub checks them against its own.
    """

    def __init__(
        self,
        app_id: int | str,
        private_key_pem: str,
        installation_id: int,
        *,
        refresh_margin: float = REFRESH_MARGIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app_id = app_id
        self.installation_id = installation_id
        self.refresh_margin = refresh_margin
        self._key = private_key_pem
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()
        # Per repository: (token, refresh at); the oldest is dropped beyond the bound.
        self._push_tokens: OrderedDict[str, tuple[str, float]] = OrderedDict()

    @property
    def refresh_at(self) -> float:
        """When (by `clock`) the cached token will be replaced; 0 before the first mint."""
        return self._refresh_at

    def app_jwt(self) -> str:
        """A fresh App JWT (`iss` = app id, backdated `iat`, 9-minute `exp`)."""
        now = int(time.time())
        # PyJWT wants `iss` as a string; GitHub accepts the app id or client id as one.
        claims = {"iat": now - JWT_BACKDATE, "exp": now + JWT_LIFETIME, "iss": str(self.app_id)}
        return jwt.encode(claims, self._key, algorithm="RS256")

    async def authorization(self, http: GitHubHttp) -> str:
        """`Bearer <installation token>`, minting one when none is fresh."""
        async with self._lock:  # one mint at a time; waiters reuse its token
            if self._token is None or self._clock() >= self._refresh_at:
                await self._mint(http)
            assert self._token is not None
            return f"Bearer {self._token}"

    def invalidate(self) -> None:
        """Drop the cached token (GitHub answered 401 to it)."""
        self._token = None

    async def push_token(self, http: GitHubHttp, repo: str) -> str:
        """A token for `git push` to `repo` (`owner/name`) alone, with `contents: write` and
        nothing else: what a push carries into a worktree the agent wrote cannot open
        issues, approve PRs or reach another repository. Cached per repository."""
        async with self._lock:
            cached = self._push_tokens.get(repo)
            if cached is not None and self._clock() < cached[1]:
                self._push_tokens.move_to_end(repo)
                return cached[0]
            narrowed = {"repositories": [repo.partition("/")[2]], "permissions": PUSH_PERMISSIONS}
            minted = await self._request_token(http, narrowed)
            self._push_tokens[repo] = minted
            while len(self._push_tokens) > PUSH_TOKEN_CACHE:
                self._push_tokens.popitem(last=False)
            return minted[0]

    async def _mint(self, http: GitHubHttp) -> None:
        self._token, self._refresh_at = await self._request_token(http, None)

    async def _request_token(self, http: GitHubHttp, narrowed: Any) -> tuple[str, float]:
        """Mint an installation token (narrowed as asked); returns it and when to refresh it."""
        path = f"/app/installations/{self.installation_id}/access_tokens"
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
