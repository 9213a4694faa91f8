"""Who is calling: personal/installation tokens, and App JWTs that mint installation tokens."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt

from github_emulator.errors import ApiError

#: GitHub refuses App JWTs that expire more than ten minutes ahead.
MAX_JWT_LIFETIME = 600
#: Allowed clock drift when checking `iat`/`exp`, as GitHub tolerates some.
JWT_LEEWAY = 60


def bad_credentials() -> ApiError:
    """GitHub's 401 for an unknown, malformed or expired token."""
    return ApiError(401, "Bad credentials")


def bearer(authorization: str | None) -> str:
    """The credential in `Authorization: Bearer X` or `token X`; 401 when absent."""
    if not authorization:
        raise ApiError(401, "Requires authentication")
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() not in ("bearer", "token") or not value.strip():
        raise bad_credentials()
    return value.strip()


@dataclass(frozen=True)
class MintedToken:
    """An installation token and when it stops working (epoch seconds)."""

    token: str
    expires_at: float
    installation_id: int = 0
    # As asked when minting: repository names, and permissions; None means all of them.
    repositories: tuple[str, ...] | None = None
    permissions: dict[str, str] | None = None

    @property
    def expires_at_iso(self) -> str:
        """`expires_at` as GitHub writes it."""
        return datetime.fromtimestamp(self.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Credentials:
    """Maps tokens to logins and checks App JWTs.

    Static tokens come from configuration. Installation tokens are minted by
    `mint` and belong to the bot login, like a GitHub App's `name[bot]` user.
    """

    def __init__(
        self,
        tokens: dict[str, str],
        *,
        bot_login: str,
        app_id: int | None = None,
        app_public_key_pem: str | None = None,
        installation_id: int = 1,
        installations: dict[int, str] | None = None,
        token_ttl: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tokens = dict(tokens)
        self.bot_login = bot_login
        self.app_id = app_id
        self.app_public_key_pem = app_public_key_pem
        self.installation_id = installation_id
        #: Installation id → the account (repository owner) it is installed on; empty:
        #: one installation (`installation_id`) on every repository.
        self.installations = dict(installations or {})
        self.suspended: set[int] = set()
        self.token_ttl = token_ttl
        self._clock = clock
        self._minted: dict[str, MintedToken] = {}
        #: Every installation token minted, in order (tests read which installation and
        #: repositories each was for).
        self.mints: list[MintedToken] = []

    def installation_of(self, full_name: str) -> int | None:
        """The installation on the repository's owner (None: the App is not installed there)."""
        if not self.installations:
            return self.installation_id
        owner = full_name.partition("/")[0].lower()
        for ident, account in self.installations.items():
            if account.lower() == owner:
                return ident
        return None

    def check_scope(self, authorization: str | None, full_name: str) -> None:
        """An installation token reaches only its installation's repositories, and only
        those it was narrowed to: any other answers 404, as on GitHub."""
        minted = self._minted.get(bearer(authorization))
        if minted is None:
            return
        name = full_name.partition("/")[2]
        if self.installation_of(full_name) != minted.installation_id or (
            minted.repositories is not None and name not in minted.repositories
        ):
            raise ApiError(404, "Not Found")

    def login_for(self, authorization: str | None) -> str:
        """The login a REST call acts as; 401 for anything not a live token."""
        token = bearer(authorization)
        if token in self.tokens:
            return self.tokens[token]
        minted = self._minted.get(token)
        if minted is None or minted.expires_at <= self._clock():
            raise bad_credentials()
        if minted.installation_id in self.suspended:
            raise ApiError(403, "This installation has been suspended")
        return self.bot_login

    def mint(
        self,
        authorization: str | None,
        installation_id: int,
        *,
        repositories: tuple[str, ...] | None = None,
        permissions: dict[str, str] | None = None,
    ) -> MintedToken:
        """Check the App JWT and issue an installation token (`POST .../access_tokens`),
        narrowed to `repositories` and `permissions` when asked (kept for inspection)."""
        self.check_app_jwt(bearer(authorization))
        known = self.installations or {self.installation_id: ""}
        if installation_id not in known:
            raise ApiError(404, "Not Found")
        if installation_id in self.suspended:
            raise ApiError(403, "This installation has been suspended")
        minted = MintedToken(
            "ghs_" + secrets.token_hex(18),
            self._clock() + self.token_ttl,
            installation_id=installation_id,
            repositories=repositories,
            permissions=permissions,
        )
        self._minted[minted.token] = minted
        self.mints.append(minted)
        return minted

    def minted(self, token: str) -> MintedToken | None:
        """The installation token `token` as it was minted (None: not one of ours)."""
        return self._minted.get(token)

    def revoke_installation_tokens(self) -> None:
        """Invalidate every minted token (GitHub does this when an App is reconfigured)."""
        self._minted.clear()

    def check_app_jwt(self, token: str) -> None:
        """Verify an RS256 App JWT; without a configured public key only its shape is checked."""
        try:
            if self.app_public_key_pem is None:
                claims = jwt.decode(token, options={"verify_signature": False})
            else:
                claims = jwt.decode(
                    token,
                    self.app_public_key_pem,
                    algorithms=["RS256"],
                    leeway=JWT_LEEWAY,
                    options={"require": ["iat", "exp", "iss"]},
                )
        except jwt.ExpiredSignatureError as exc:
            raise ApiError(
                401, "'Expiration time' claim ('exp') must be a numeric value in the future."
            ) from exc
        except jwt.PyJWTError as exc:
            raise ApiError(401, "A JSON web token could not be decoded") from exc
        if self.app_id is not None and str(claims.get("iss")) != str(self.app_id):
            raise ApiError(401, "'Issuer' claim ('iss') must be an Integer")
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp - self._clock() > MAX_JWT_LIFETIME + JWT_LEEWAY:
            raise ApiError(401, "'Expiration time' claim ('exp') is too far in the future")
