"""Signature verification: GitHub's published vector, and every way a header can be wrong."""

from __future__ import annotations

import pytest

from agent_workflow.ingress.signature import Verdict, sign, verify

# https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
VECTOR_SECRET = "It's a Secret to Everybody"
VECTOR_BODY = b"Hello, World!"
VECTOR_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_verify__github_test_vector() -> None:
    assert verify(VECTOR_SECRET, VECTOR_BODY, VECTOR_SIGNATURE) is Verdict.VALID
    assert sign(VECTOR_SECRET, VECTOR_BODY) == VECTOR_SIGNATURE


def test_verify__uppercase_hex_is_the_same_digest() -> None:
    assert verify(VECTOR_SECRET, VECTOR_BODY, VECTOR_SIGNATURE.upper()).ok


@pytest.mark.parametrize(
    ("secret", "body", "header"),
    [
        ("another secret", VECTOR_BODY, VECTOR_SIGNATURE),
        (VECTOR_SECRET, b"Hello, World?", VECTOR_SIGNATURE),
        (VECTOR_SECRET, VECTOR_BODY, VECTOR_SIGNATURE[:-1] + "f"),
    ],
    ids=["wrong-secret", "tampered-body", "one-digit-off"],
)
def test_verify__mismatch(secret: str, body: bytes, header: str) -> None:
    verdict = verify(secret, body, header)
    assert verdict is Verdict.MISMATCH
    assert not verdict.ok


@pytest.mark.parametrize(
    "header",
    [
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",  # no scheme
        "sha1=757107ea0eb2509fc211221cce984b8a37570b6d",  # wrong scheme in the 256 header
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",  # short
        "sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",  # not hex
        "sha256=",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17é",  # non-ASCII
    ],
)
def test_verify__malformed(header: str) -> None:
    assert verify(VECTOR_SECRET, VECTOR_BODY, header) is Verdict.MALFORMED


@pytest.mark.parametrize("header", [None, "", "   "])
def test_verify__missing(header: str | None) -> None:
    assert verify(VECTOR_SECRET, VECTOR_BODY, header) is Verdict.MISSING


def test_verify__sha1_only_is_rejected_even_when_it_would_match() -> None:
    assert verify(VECTOR_SECRET, VECTOR_BODY, None, legacy_header=True) is Verdict.SHA1_ONLY
