"""Neutralising text we post to GitHub on the agent's behalf (DESIGN §9).

Agent output (and issue text it echoes) may be written by an attacker. Before it
reaches GitHub:

- `<!--` is escaped, so it can hide nothing and cannot carry an effect marker;
- `@someone` and `@org/team` are broken with a zero-width space (no notification);
- closing keywords (`Fixes #2`, `closes owner/repo#3`, `Resolves <issue URL>`) are
  defused the same way, so merging our pull request closes only the issue named by
  the one line we write ourselves;
- images not hosted by GitHub are removed (they would load from a stranger's server
  for every reader, and can carry data out in their URL).

`cap_body` and `cap_title` keep what we post within GitHub's limits.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

ZWSP = "\u200b"
"""Zero-width space: invisible, yet it breaks a mention or a closing keyword."""

BODY_LIMIT = 65_536
"""GitHub refuses comment and pull request bodies longer than this (characters)."""
TITLE_LIMIT = 256
"""GitHub refuses issue and pull request titles longer than this (characters)."""
TRUNCATED_NOTE = (
    "\n\n*(Truncated to fit GitHub's limit of 65,536 characters. The full text is kept "
    "by agent-workflow with the phase run's result.)*"
)
IMAGE_REMOVED = "[image removed: not hosted by GitHub]"

_HTML_COMMENT = re.compile(r"<!--")
# An @ that GitHub would read as a mention: not inside a word or an e-mail address.
_MENTION = re.compile(r"(?<![\w.+\-/`])@(?=[A-Za-z0-9])")
_KEYWORD = re.compile(
    r"\b(close[sd]?|fix(?:e[sd])?|resolve[sd]?)"
    r"(?=[*_]*:?[*_]*\s+[*_]*(?:(?:[\w.\-]+/[\w.\-]+)?#\d|https?://|GH-\d))",
    re.IGNORECASE,
)
# ![alt](url "title") — the alt may hold one level of brackets; the URL may be in <>.
_MD_IMAGE = re.compile(
    r"!\[((?:[^\[\]\n]|\[[^\[\]\n]*\])*)\]\(\s*<?([^\s)>]*)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)"
)
# ![alt][ref], ![alt][] and [ref]: url (reference definitions).
_MD_IMAGE_REF = re.compile(r"!\[((?:[^\[\]\n]|\[[^\[\]\n]*\])*)\]\[([^\[\]\n]*)\]")
_MD_REF_DEF = re.compile(r"^ {0,3}\[([^\[\]\n]+)\]:[ \t]*<?(\S+?)>?(?:[ \t]+.*)?$", re.MULTILINE)
_MD_IMAGE_SHORTCUT = re.compile(r"!\[([^\[\]\n]+)\](?![\[(])")
_HTML_MEDIA = re.compile(r"<\s*(?:img|image|source|video|audio|picture|svg)\b[^>]*>", re.I)
_ATTR_URL = re.compile(
    r"""\b(?:src|srcset|poster|href|xlink:href)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""", re.I
)
_HOST = re.compile(r"^[a-z0-9.\-]+$")


def is_github_hosted(url: str) -> bool:
    """True for images GitHub itself hosts: user attachments and `*.githubusercontent.com`."""
    if not url.startswith("https://") or any(c in url for c in "\\ \t\r\n"):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    if parts.username or parts.password or parts.port or not _HOST.match(host):
        return False
    if host.endswith(".githubusercontent.com"):
        return True
    return host == "github.com" and parts.path.startswith("/user-attachments/")


def _references(text: str) -> dict[str, str]:
    return {m.group(1).strip().casefold(): m.group(2) for m in _MD_REF_DEF.finditer(text)}


def _strip_images(text: str) -> str:
    refs = _references(text)

    def inline(m: re.Match[str]) -> str:
        return m.group(0) if is_github_hosted(m.group(2)) else IMAGE_REMOVED

    def by_reference(m: re.Match[str]) -> str:
        url = refs.get((m.group(2) or m.group(1)).strip().casefold(), "")
        return m.group(0) if is_github_hosted(url) else IMAGE_REMOVED

    def shortcut(m: re.Match[str]) -> str:
        url = refs.get(m.group(1).strip().casefold())
        if url is None:  # not an image, just an exclamation mark before brackets
            return m.group(0)
        return m.group(0) if is_github_hosted(url) else IMAGE_REMOVED

    def html(m: re.Match[str]) -> str:
        urls = [
            u.strip("\"'").strip()
            for value in _ATTR_URL.findall(m.group(0))
            for u in value.strip("\"'").split(",")
        ]
        urls = [u.split()[0] for u in urls if u]
        return m.group(0) if urls and all(map(is_github_hosted, urls)) else IMAGE_REMOVED

    text = _MD_IMAGE.sub(inline, text)
    text = _MD_IMAGE_REF.sub(by_reference, text)
    text = _MD_IMAGE_SHORTCUT.sub(shortcut, text)
    return _HTML_MEDIA.sub(html, text)


def neutralise(text: str) -> str:
    """Agent (or issue) text made safe to post: see the module docstring."""
    text = _HTML_COMMENT.sub("&lt;!--", text)
    text = _strip_images(text)
    text = _MENTION.sub("@" + ZWSP, text)
    return _KEYWORD.sub(lambda m: m.group(1) + ZWSP, text)


def cap_body(body: str, limit: int = BODY_LIMIT) -> str:
    """`body` within `limit` characters; a longer one is cut and ends with a note saying so."""
    if len(body) <= limit:
        return body
    return body[: limit - len(TRUNCATED_NOTE)].rstrip() + TRUNCATED_NOTE


def cap_title(title: str) -> str:
    """A title within GitHub's 256 characters (cut with an ellipsis)."""
    title = " ".join(title.split())  # a title is one line
    return title if len(title) <= TITLE_LIMIT else title[: TITLE_LIMIT - 1].rstrip() + "…"
