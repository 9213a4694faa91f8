"""Webhook signatures: `X-Hub-Signature-256` is `sha256=` + hex HMAC-SHA256(secret, raw body).

Only the SHA-256 header counts. The legacy `X-Hub-Signature` (SHA-1) is never
accepted on its own: SHA-1 HMACs are still unforgeable today, but accepting the
weaker header would let a downgrade slip past, and GitHub always sends both.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from enum import StrEnum

SIGNATURE_HEADER = "x-hub-signature-256"
LEGACY_SIGNATURE_HEADER = "x-hub-signature"
PREFIX = "sha256="
# 32 bytes of SHA-256 as hex; checked before comparing so garbage is "malformed", not "mismatch".
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


class Verdict(StrEnum):
    """The outcome of checking a delivery's signature; only `VALID` is accepted."""

    VALID = "valid"
    MISSING = "missing X-Hub-Signature-256"
    SHA1_ONLY = "only the SHA-1 X-Hub-Signature was sent; X-Hub-Signature-256 is required"
    MALFORMED = "malformed X-Hub-Signature-256"
    MISMATCH = "X-Hub-Signature-256 does not match the body"

    @property
    def ok(self) -> bool:
        """True when the delivery may be processed."""
        return self is Verdict.VALID


def sign(secret: str, body: bytes) -> str:
    """The header value GitHub would send for `body` signed with `secret`."""
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None, *, legacy_header: bool = False) -> Verdict:
    """Check `header` (the X-Hub-Signature-256 value) against `body`.

    `legacy_header` says whether an `X-Hub-Signature` was present, only to give a
    clearer verdict when it is all there is. The digests are compared with
    `hmac.compare_digest`, so the time taken reveals nothing about the expected value.
    """
    if header is None or not header.strip():
        return Verdict.SHA1_ONLY if legacy_header else Verdict.MISSING
    scheme, sep, digest = header.strip().partition("=")
    digest = digest.lower()  # hex is case-insensitive; GitHub sends lowercase
    if not sep or scheme.lower() != "sha256" or not _HEX_DIGEST.fullmatch(digest):
        return Verdict.MALFORMED
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if hmac.compare_digest(expected.encode("ascii"), digest.encode("ascii")):
        return Verdict.VALID
    return Verdict.MISMATCH
