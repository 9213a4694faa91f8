"""GitHub request paths as their route templates: the only form a path takes in a label.

A raw path names an owner, a repository, an issue number, a label's name or a file's
path — values without bound, some chosen by whoever opens an issue. The label is the
route as GitHub documents it (`/repos/{owner}/{repo}/issues/{issue_number}/comments`),
and any path that matches no route the adapter uses is `other`.
"""

from __future__ import annotations

import re
from functools import lru_cache

OTHER = "other"
"""The route of any path not in `ROUTES`."""

_REPO = "/repos/{owner}/{repo}"
ROUTES: tuple[str, ...] = (
    _REPO,
    f"{_REPO}/issues",
    f"{_REPO}/issues/{{issue_number}}",
    f"{_REPO}/issues/{{issue_number}}/comments",
    f"{_REPO}/issues/{{issue_number}}/labels",
    f"{_REPO}/issues/{{issue_number}}/labels/{{name}}",
    f"{_REPO}/issues/{{issue_number}}/events",
    f"{_REPO}/issues/comments/{{comment_id}}",
    f"{_REPO}/pulls",
    f"{_REPO}/pulls/{{pull_number}}",
    f"{_REPO}/pulls/{{pull_number}}/merge",
    f"{_REPO}/pulls/{{pull_number}}/reviews",
    f"{_REPO}/pulls/{{pull_number}}/reviews/{{review_id}}/comments",
    f"{_REPO}/pulls/{{pull_number}}/comments",
    f"{_REPO}/pulls/{{pull_number}}/comments/{{comment_id}}/replies",
    f"{_REPO}/commits/{{ref}}/check-runs",
    f"{_REPO}/check-runs/{{check_run_id}}/annotations",
    f"{_REPO}/collaborators/{{username}}/permission",
    f"{_REPO}/git/refs",
    f"{_REPO}/git/ref/{{ref+}}",
    f"{_REPO}/contents/{{path+}}",
    f"{_REPO}/hooks/{{hook_id}}/deliveries",
    f"{_REPO}/hooks/{{hook_id}}/deliveries/{{delivery_id}}",
    f"{_REPO}/installation",
    "/app",
    "/app/hook/deliveries",
    "/app/hook/deliveries/{delivery_id}",
    "/app/installations",
    "/app/installations/{installation_id}/access_tokens",
    "/installation/repositories",
    "/user",
)
"""Every route the GitHub adapter calls. `{name+}` matches the rest of the path (a ref or
a file path may contain `/`); an `_id` or `_number` is digits; anything else one segment."""

_PLACEHOLDER = re.compile(r"\{([a-z_]+)(\+?)\}")


def _pattern(template: str) -> re.Pattern[str]:
    parts: list[str] = []
    last = 0
    for match in _PLACEHOLDER.finditer(template):
        parts.append(re.escape(template[last : match.start()]))
        name, rest = match.group(1), match.group(2)
        if rest:
            parts.append(r".+")
        elif name.endswith(("_id", "_number")):
            parts.append(r"[0-9]+")
        else:
            parts.append(r"[^/]+")
        last = match.end()
    parts.append(re.escape(template[last:]))
    return re.compile("".join(parts))


_COMPILED = tuple((_pattern(t), t.replace("+}", "}")) for t in ROUTES)
# A label value is at most this long; the templates are all far shorter.
_MAX_PATH = 2048


@lru_cache(maxsize=1024)
def route_of(path: str) -> str:
    """The route template of a request path (relative to the API's base), else `OTHER`."""
    if len(path) > _MAX_PATH:
        return OTHER
    path = "/" + path.strip("/")
    for pattern, template in _COMPILED:
        if pattern.fullmatch(path):
            return template
    return OTHER
