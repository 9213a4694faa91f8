"""The neutraliser and the signed markers, point by point."""

from __future__ import annotations

import pytest

from agent_workflow.core.effects import Markers
from agent_workflow.core.neutralise import (
    BODY_LIMIT,
    IMAGE_REMOVED,
    TITLE_LIMIT,
    TRUNCATED_NOTE,
    ZWSP,
    cap_body,
    cap_title,
    is_github_hosted,
    neutralise,
)

# -- hidden comments and markers ---------------------------------------------------------


def test_html_comments_are_escaped() -> None:
    out = neutralise("a <!-- hidden --> b <!--x")
    assert "<!--" not in out
    assert out == "a &lt;!-- hidden --> b &lt;!--x"


def test_a_marker_in_agent_text_is_no_marker_any_more() -> None:
    markers = Markers(b"s")
    key = "o/r#1/deliver/1/pr-comment"
    out = neutralise(f"plan\n\n{markers.marker(key)}")
    assert "<!--" not in out
    assert not markers.marks(out, key)


# -- mentions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@someone", f"@{ZWSP}someone"),
        ("cc @org/team-a.", f"cc @{ZWSP}org/team-a."),
        ("(@a-b)", f"(@{ZWSP}a-b)"),
        ("**@x**", f"**@{ZWSP}x**"),
        ("@@x", f"@@{ZWSP}x"),
    ],
)
def test_mentions_and_team_pings_are_broken(text: str, expected: str) -> None:
    assert neutralise(text) == expected


@pytest.mark.parametrize("text", ["me@example.com", "a.b+c@d.io", "@ alone", "x@"])
def test_what_is_no_mention_is_left_alone(text: str) -> None:
    assert neutralise(text) == text


# -- closing keywords --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("Fixes #2", "Fixes"),
        ("fix #2", "fix"),
        ("fixed: #2", "fixed"),
        ("Closes octo/other#3", "Closes"),
        ("close #12", "close"),
        ("closed #1", "closed"),
        ("RESOLVES #4", "RESOLVES"),
        ("resolve https://github.com/o/r/issues/5", "resolve"),
        ("resolved\n#6", "resolved"),
        ("**Fixes** #7", "Fixes"),
        ("Fixes GH-8", "Fixes"),
    ],
)
def test_closing_keywords_are_defused(text: str, keyword: str) -> None:
    out = neutralise(text)
    assert out != text
    assert keyword + ZWSP in out


@pytest.mark.parametrize("text", ["prefix #2", "fixes the bug", "see #2", "fixture #3"])
def test_other_words_before_a_reference_are_left_alone(text: str) -> None:
    assert neutralise(text) == text


# -- images ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/user-attachments/assets/abc",
        "https://user-images.githubusercontent.com/1/2.png",
        "https://raw.githubusercontent.com/o/r/main/a.png",
        "https://private-user-images.githubusercontent.com/x.png?jwt=1",
    ],
)
def test_github_hosted_images_stay(url: str) -> None:
    text = f'see ![shot]({url}) and <img src="{url}" width=10>'
    assert is_github_hosted(url)
    assert neutralise(text) == text


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/p.png",
        "http://user-images.githubusercontent.com/1.png",  # not https
        "https://githubusercontent.com.evil.example/a.png",
        "https://github.com@evil.example/a.png",
        "https://evil.example\\.githubusercontent.com/a.png",
        "https://github.com/o/r/raw/main/a.png",  # served on behalf of anyone's repo
        "//evil.example/a.png",
        "/relative.png",
    ],
)
def test_off_github_images_are_removed(url: str) -> None:
    assert not is_github_hosted(url)
    assert neutralise(f"a ![x]({url}) b") == f"a {IMAGE_REMOVED} b"
    assert neutralise(f'a <img alt="x" src="{url}"> b') == f"a {IMAGE_REMOVED} b"


def test_images_by_reference_are_checked_too() -> None:
    text = "![a][bad] ![b][] ![good]\n\n[bad]: https://evil.example/1.png\n[b]: https://evil.example/2.png\n[good]: https://github.com/user-attachments/assets/3\n"
    out = neutralise(text)
    assert out.startswith(f"{IMAGE_REMOVED} {IMAGE_REMOVED} ![good]")


def test_html_media_with_any_foreign_source_is_removed() -> None:
    ok = "https://github.com/user-attachments/assets/1"
    text = f'<picture><source srcset="{ok} 1x, https://evil.example/2.png 2x"><img src="{ok}"></picture>'
    out = neutralise(text)
    assert "evil.example" not in out
    assert f'<img src="{ok}">' in out


def test_links_are_not_images() -> None:
    text = "[docs](https://evil.example/readme) and https://evil.example/x.png"
    assert neutralise(text) == text


# -- limits ------------------------------------------------------------------------------


def test_a_body_within_the_limit_is_untouched() -> None:
    body = "x" * BODY_LIMIT
    assert cap_body(body) == body


def test_a_long_body_is_cut_with_a_note_within_the_limit() -> None:
    out = cap_body("y" * (BODY_LIMIT + 10))
    assert len(out) <= BODY_LIMIT
    assert out.endswith(TRUNCATED_NOTE)
    assert len(cap_body("z" * 500, 200)) <= 200


def test_titles_are_cut_at_256() -> None:
    assert cap_title("short") == "short"
    out = cap_title("t" * 300)
    assert len(out) == TITLE_LIMIT
    assert out.endswith("…")
    assert cap_title("two\nlines") == "two lines"


# -- signed markers ----------------------------------------------------------------------


def test_markers_are_deterministic_under_the_secret_and_differ_across_secrets() -> None:
    key = "o/r#1/plan/1/plan-comment"
    assert Markers(b"s").marker(key) == Markers(b"s").marker(key)
    assert Markers(b"s").marker(key) != Markers(b"t").marker(key)
    assert Markers(b"s").marker(key).startswith(f"<!-- agent-workflow:effect={key} sig=")


def test_only_a_trailing_marker_with_our_signature_counts() -> None:
    markers, key = Markers(b"s"), "o/r#1/plan/1/plan-comment"
    assert markers.marks(markers.mark("body", key), key)
    assert markers.marks(markers.mark("body", key) + "\n", key)
    assert not markers.marks(markers.mark("body", key), key + "x")
    assert not markers.marks(markers.mark("body", key) + "\nmore text", key)
    assert not markers.marks(Markers(b"other").mark("body", key), key)
    assert not markers.marks(f"body <!-- agent-workflow:effect={key} -->", key)  # unsigned


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        Markers(b"")
