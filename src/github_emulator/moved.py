"""A renamed or transferred repository's old URLs, answered as GitHub answers them.

Every REST route under `/repos/{owner}/{repo}` that names a repository's former
`owner/name` (and no repository has that name now) is redirected to the same path
under the current name: `301 Moved Permanently` for GET/HEAD, `307 Temporary
Redirect` for every other method (the request was not processed; a client resends
it, method and body unchanged). The query string is kept.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from github_emulator.core import Emulator

_DOCS = "https://docs.github.com/rest/using-the-rest-api/best-practices-for-using-the-rest-api"
# The raw (still percent-encoded) path: an optional GHES prefix, the repository, the rest.
_REPO_PATH = re.compile(rb"^(?P<prefix>(?:/api/v3)?/repos/)[^/]+/[^/]+(?P<rest>/.*)?$")


def redirect(emu: Emulator, request: Request) -> Response | None:
    """The redirect answering `request` when it names a moved repository, else None."""
    owner, name = request.path_params.get("owner"), request.path_params.get("repo")
    if owner is None or name is None:
        return None
    repo = emu.state.moved_repo(str(owner), str(name))
    raw = request.scope.get("raw_path") or request.url.path.encode()
    found = _REPO_PATH.match(raw)
    if repo is None or found is None:
        return None
    new_path = found["prefix"].decode() + repo.full_name + (found["rest"] or b"").decode()
    location = str(request.url.replace(path=new_path))
    if request.method in ("GET", "HEAD"):
        status, message = 301, "Moved Permanently"
    else:
        status, message = 307, "Temporary Redirect"
    body = {"message": message, "url": location, "documentation_url": _DOCS}
    return JSONResponse(body, status_code=status, headers={"location": location})
