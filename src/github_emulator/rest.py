"""The GitHub REST subset the adapter uses, with GitHub's status codes and error bodies.

Every route goes through `_serve`: count it, authenticate, charge the rate
limit, apply a matching fault, run the handler, add `x-ratelimit-*` headers.
Routes are mounted both at the root (api.github.com) and under `/api/v3`
(GitHub Enterprise Server).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from github_emulator import hook_log, moved
from github_emulator.core import Emulator
from github_emulator.credentials import bearer
from github_emulator.errors import ApiError, missing_field, not_found
from github_emulator.faults import run_with_fault
from github_emulator.model import Repo
from github_emulator.pagination import paginate

#: Path parameters that may contain slashes (branch names, label names with `/`).
_PATH_PARAMS = ("ref", "name", "path")
_GHES_PREFIX = re.compile(r"^/api/v3(?=/)")

#: `permission` collapses the finer `role_name`, as GitHub's endpoint does.
_PERMISSION_OF_ROLE = {
    "admin": "admin",
    "maintain": "write",
    "write": "write",
    "triage": "read",
    "read": "read",
    "none": "none",
}


@dataclass
class Call:
    """One authenticated REST request, as handlers see it."""

    request: Request
    emu: Emulator
    login: str

    def param(self, name: str) -> str:
        """A path parameter."""
        return str(self.request.path_params[name])

    def number(self, name: str) -> int:
        """A numeric path parameter; GitHub answers 404 for non-numbers."""
        try:
            return int(self.param(name))
        except ValueError:
            raise not_found() from None

    def repo(self) -> Repo:
        """The repository named in the path."""
        return self.emu.state.repo(self.param("owner"), self.param("repo"))

    async def body(self) -> Any:
        """The parsed JSON body; GitHub's 400 when it is not JSON."""
        raw = await self.request.body()
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(400, "Problems parsing JSON") from None

    async def fields(self) -> dict[str, Any]:
        """The JSON body, which must be an object."""
        body = await self.body()
        if not isinstance(body, dict):
            raise ApiError(400, "Problems parsing JSON")
        return body


Handler = Callable[[Call], Awaitable[Response]]


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(data, status_code=status, headers=headers)


def error_response(exc: ApiError) -> Response:
    """An `ApiError` as GitHub's JSON error answer."""
    return _json(exc.body(), exc.status, exc.headers)


# -- handlers ---------------------------------------------------------------------


async def get_repo(call: Call) -> Response:
    """GET /repos/{owner}/{repo}"""
    return _json(call.emu.render.repo(call.repo()))


async def get_issue(call: Call) -> Response:
    """GET /repos/{owner}/{repo}/issues/{issue_number}"""
    repo = call.repo()
    return _json(call.emu.render.issue(repo, call.emu.state.issue(repo, call.number("number"))))


async def list_comments(call: Call) -> Response:
    """GET /repos/{owner}/{repo}/issues/{issue_number}/comments (oldest first, paginated)"""
    repo = call.repo()
    issue = call.emu.state.issue(repo, call.number("number"))
    page, headers = paginate(call.request.url, issue.comments)
    return _json([call.emu.render.comment(repo, c) for c in page], headers=headers)


async def create_comment(call: Call) -> Response:
    """POST /repos/{owner}/{repo}/issues/{issue_number}/comments"""
    repo, fields = call.repo(), await call.fields()
    body = fields.get("body")
    if not isinstance(body, str):
        raise missing_field("IssueComment", "body")
    comment, events = call.emu.state.add_comment(repo, call.number("number"), body, call.login)
    await call.emu.emit(events)
    return _json(call.emu.render.comment(repo, comment), 201)


async def list_labels(call: Call) -> Response:
    """GET /repos/{owner}/{repo}/issues/{issue_number}/labels"""
    repo = call.repo()
    issue = call.emu.state.issue(repo, call.number("number"))
    page, headers = paginate(call.request.url, issue.labels)
    return _json([call.emu.render.label(repo, label) for label in page], headers=headers)


def _label_names(body: Any) -> list[str]:
    """GitHub takes `["a"]`, `{"labels": ["a"]}` or `{"labels": [{"name": "a"}]}`."""
    labels = body.get("labels") if isinstance(body, dict) else body
    if not isinstance(labels, list):
        raise missing_field("Label", "labels")
    names = []
    for item in labels:
        name = item.get("name") if isinstance(item, dict) else item
        if not isinstance(name, str):
            raise missing_field("Label", "name")
        names.append(name)
    return names


async def add_labels(call: Call) -> Response:
    """POST /repos/{owner}/{repo}/issues/{issue_number}/labels → every label of the issue"""
    repo, names = call.repo(), _label_names(await call.body())
    labels, events = call.emu.state.add_labels(repo, call.number("number"), names, call.login)
    await call.emu.emit(events)
    return _json([call.emu.render.label(repo, label) for label in labels])


async def remove_label(call: Call) -> Response:
    """DELETE /repos/{owner}/{repo}/issues/{issue_number}/labels/{name} → remaining labels"""
    repo = call.repo()
    labels, events = call.emu.state.remove_label(
        repo, call.number("number"), call.param("name"), call.login
    )
    await call.emu.emit(events)
    return _json([call.emu.render.label(repo, label) for label in labels])


async def create_pull(call: Call) -> Response:
    """POST /repos/{owner}/{repo}/pulls"""
    repo, fields = call.repo(), await call.fields()
    text = {k: fields.get(k) for k in ("title", "head", "base", "body")}
    draft = fields.get("draft", False)
    if not isinstance(draft, bool):
        raise ApiError(422, "Invalid request.\n\nFor 'properties/draft', is not a boolean.")
    issue, events = call.emu.state.create_pull(
        repo,
        title=str(text["title"] or ""),
        head=str(text["head"] or ""),
        base=str(text["base"] or ""),
        body=str(text["body"] or ""),
        author=call.login,
        draft=draft,
    )
    await call.emu.emit(events)
    return _json(call.emu.render.pull(repo, issue), 201)


async def list_pulls(call: Call) -> Response:
    """GET /repos/{owner}/{repo}/pulls?state=&head=owner:branch&base= (newest first)"""
    repo, query = call.repo(), call.request.query_params
    state = query.get("state", "open")
    if state not in ("open", "closed", "all"):
        state = "open"
    pulls = call.emu.state.pulls(repo, state=state, head=query.get("head"), base=query.get("base"))
    page, headers = paginate(call.request.url, pulls)
    return _json([call.emu.render.pull_simple(repo, p) for p in page], headers=headers)


async def get_pull(call: Call) -> Response:
    """GET /repos/{owner}/{repo}/pulls/{pull_number}"""
    repo = call.repo()
    return _json(call.emu.render.pull(repo, call.emu.state.pull(repo, call.number("number"))))


async def merge_pull(call: Call) -> Response:
    """PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge"""
    repo, fields = call.repo(), await call.fields()
    sha = fields.get("sha")
    issue, events = call.emu.state.merge_pull(
        repo, call.number("number"), call.login, sha if isinstance(sha, str) else None
    )
    await call.emu.emit(events)
    assert issue.pull is not None
    return _json(
        {"sha": issue.pull.merge_sha, "merged": True, "message": "Pull Request successfully merged"}
    )


async def list_reviews(call: Call) -> Response:
    """GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews (oldest first, paginated)"""
    repo = call.repo()
    issue = call.emu.state.pull(repo, call.number("number"))
    assert issue.pull is not None
    page, headers = paginate(call.request.url, issue.pull.reviews)
    return _json([call.emu.render.review(repo, r) for r in page], headers=headers)


async def list_review_comments_of_review(call: Call) -> Response:
    """GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews/{review_id}/comments (paginated)"""
    repo = call.repo()
    comments = call.emu.state.review_comments(repo, call.number("number"), call.number("review_id"))
    page, headers = paginate(call.request.url, comments)
    return _json([call.emu.render.review_comment(repo, c) for c in page], headers=headers)


async def list_review_comments(call: Call) -> Response:
    """GET /repos/{owner}/{repo}/pulls/{pull_number}/comments (ascending id, paginated)"""
    repo = call.repo()
    comments = call.emu.state.review_comments(repo, call.number("number"))
    if call.request.query_params.get("direction") == "desc":
        comments.reverse()
    page, headers = paginate(call.request.url, comments)
    return _json([call.emu.render.review_comment(repo, c) for c in page], headers=headers)


async def reply_to_review_comment(call: Call) -> Response:
    """POST /repos/{owner}/{repo}/pulls/{pull_number}/comments/{comment_id}/replies {body}"""
    repo, fields = call.repo(), await call.fields()
    body = fields.get("body")
    reply, events = call.emu.state.reply_to_review_comment(
        repo,
        call.number("number"),
        call.number("comment_id"),
        body if isinstance(body, str) else "",
        call.login,
    )
    await call.emu.emit(events)
    rendered = call.emu.render.review_comment(repo, reply)
    return _json(rendered, 201, headers={"location": rendered["url"]})


async def edit_comment(call: Call) -> Response:
    """PATCH /repos/{owner}/{repo}/issues/comments/{comment_id} {body}"""
    repo, fields = call.repo(), await call.fields()
    body = fields.get("body")
    comment, events = call.emu.state.edit_comment(
        repo, call.number("comment_id"), body if isinstance(body, str) else "", call.login
    )
    await call.emu.emit(events)
    return _json(call.emu.render.comment(repo, comment))


async def list_check_runs(call: Call) -> Response:
    """GET /repos/{owner}/{repo}/commits/{ref}/check-runs → {total_count, check_runs}

    Takes `check_name`, `status`, `filter` (`latest`, the default, or `all`) and pages.
    """
    repo, query = call.repo(), call.request.query_params
    state = call.emu.state
    runs = state.check_runs(
        repo,
        call.param("ref"),
        check_name=query.get("check_name"),
        status=query.get("status"),
        latest=query.get("filter", "latest") != "all",
    )
    page, headers = paginate(call.request.url, runs)
    rendered = []
    for run in page:
        suite = repo.check_suites[run.suite_id]
        pulls = state.pulls_at(repo, run.head_sha)
        rendered.append(call.emu.render.check_run(repo, run, suite, pulls, webhook=False))
    return _json({"total_count": len(runs), "check_runs": rendered}, headers=headers)


async def list_annotations(call: Call) -> Response:
    """GET /repos/{owner}/{repo}/check-runs/{check_run_id}/annotations (paginated)"""
    repo = call.repo()
    run = call.emu.state.check_run(repo, call.number("check_run_id"))
    page, headers = paginate(call.request.url, run.annotations)
    return _json([call.emu.render.annotation(repo, run, a) for a in page], headers=headers)


async def get_permission(call: Call) -> Response:
    """GET /repos/{owner}/{repo}/collaborators/{username}/permission"""
    repo, login = call.repo(), call.param("username")
    role = call.emu.state.role(repo, login)
    user = call.emu.render.user(call.emu.state.user(login))
    return _json({"permission": _PERMISSION_OF_ROLE[role], "role_name": role, "user": user})


async def create_ref(call: Call) -> Response:
    """POST /repos/{owner}/{repo}/git/refs {ref, sha}"""
    repo, fields = call.repo(), await call.fields()
    ref, sha = str(fields.get("ref") or ""), str(fields.get("sha") or "")
    call.emu.state.create_ref(repo, ref, sha)
    return _json(call.emu.render.ref(repo, ref, sha), 201)


async def get_ref(call: Call) -> Response:
    """GET /repos/{owner}/{repo}/git/ref/{ref} (e.g. `heads/agent/issue-1`)"""
    repo = call.repo()
    ref = f"refs/{call.param('ref')}"
    return _json(call.emu.render.ref(repo, ref, call.emu.state.ref(repo, ref)))


async def get_contents(call: Call) -> Response:
    """GET /repos/{owner}/{repo}/contents/{path}?ref= (a file; the default branch without
    `ref`): base64 content, the blob sha, an ETag; 304 to a matching `If-None-Match`."""
    repo = call.repo()
    branch = call.request.query_params.get("ref") or repo.default_branch
    path = call.param("path")
    text = call.emu.state.file(repo, branch.removeprefix("refs/heads/"), path)
    data = text.encode()
    sha = hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()
    etag = f'"{sha}"'
    if etag in (call.request.headers.get("if-none-match") or "").split(", "):
        return Response(status_code=304, headers={"etag": etag})
    encoded = base64.encodebytes(data).decode()  # GitHub's: lines of 60 characters
    body = {
        "type": "file",
        "encoding": "base64",
        "size": len(data),
        "name": path.rpartition("/")[2],
        "path": path,
        "sha": sha,
        "content": encoded,
    }
    return _json(body, headers={"etag": etag})


async def access_token(call: Call) -> Response:
    """POST /app/installations/{installation_id}/access_tokens (authenticated by App JWT)"""
    fields = await call.fields()
    names, permissions = fields.get("repositories"), fields.get("permissions")
    if names is not None and not (
        isinstance(names, list) and all(isinstance(n, str) and n for n in names)
    ):
        raise ApiError(422, "Invalid request.\n\nFor 'properties/repositories', is not an array.")
    if permissions is not None and not (
        isinstance(permissions, dict) and all(v in ("read", "write") for v in permissions.values())
    ):
        raise ApiError(422, "Invalid request.\n\nFor 'properties/permissions', is not an object.")
    minted = call.emu.credentials.mint(
        call.request.headers.get("authorization"),
        call.number("installation_id"),
        repositories=None if names is None else tuple(names),
        permissions=permissions,
    )
    answer: dict[str, Any] = {
        "token": minted.token,
        "expires_at": minted.expires_at_iso,
        "permissions": permissions
        or {"issues": "write", "pull_requests": "write", "contents": "write"},
        "repository_selection": "all" if names is None else "selected",
    }
    if names is not None:
        answer["repositories"] = [{"name": n} for n in names]
    return _json(answer, 201)


async def get_user(call: Call) -> Response:
    """GET /user (the account the token acts as)"""
    return _json(call.emu.render.user(call.emu.state.user(call.login)))


async def get_app(call: Call) -> Response:
    """GET /app (authenticated by App JWT): the App, whose bot user is `<slug>[bot]`."""
    emu = call.emu
    emu.credentials.check_app_jwt(bearer(call.request.headers.get("authorization")))
    slug = emu.credentials.bot_login.removesuffix("[bot]")
    return _json(
        {
            "id": emu.credentials.app_id,
            "slug": slug,
            "name": slug,
            "owner": None,
            "html_url": f"{emu.render.web_url}/apps/{slug}",
        }
    )


async def app_hook_deliveries(call: Call) -> Response:
    """GET /app/hook/deliveries (App JWT): every attempt, newest first, cursor-paginated."""
    emu = call.emu
    hook_log.check_jwt(emu, call.request.headers.get("authorization"))
    items, headers = hook_log.page(call.request.url, emu.webhooks.deliveries)
    return _json(items, headers=headers)


async def app_hook_delivery(call: Call) -> Response:
    """GET /app/hook/deliveries/{delivery_id} (App JWT): one attempt with its request."""
    emu = call.emu
    hook_log.check_jwt(emu, call.request.headers.get("authorization"))
    found = hook_log.find(emu.webhooks.deliveries, call.param("delivery_id"))
    return _json(hook_log.detail(found, emu.webhooks.url))


def _repo_hook_log(call: Call) -> list[Any]:
    repo = call.repo()
    if call.number("hook_id") != call.emu.webhooks.hook_id:
        raise not_found()
    return [d for d in call.emu.webhooks.deliveries if d.repository == repo.full_name]


async def repo_hook_deliveries(call: Call) -> Response:
    """GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries: that repository's attempts."""
    items, headers = hook_log.page(call.request.url, _repo_hook_log(call))
    return _json(items, headers=headers)


async def repo_hook_delivery(call: Call) -> Response:
    """GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries/{delivery_id}"""
    found = hook_log.find(_repo_hook_log(call), call.param("delivery_id"))
    return _json(hook_log.detail(found, call.emu.webhooks.url))


async def list_issues(call: Call) -> Response:
    """GET /repos/{owner}/{repo}/issues?state=&labels=a,b (pull requests included, as on GitHub)"""
    repo = call.repo()
    query = call.request.query_params
    state = query.get("state") or "open"
    wanted = [n.strip() for n in (query.get("labels") or "").split(",") if n.strip()]
    issues = [
        i
        for i in sorted(repo.issues.values(), key=lambda i: i.number, reverse=True)
        if (state == "all" or i.state == state) and all(i.has_label(n) for n in wanted)
    ]
    chunk, headers = hook_log.issues_page(call.request.url, issues)
    return _json([call.emu.render.issue(repo, i) for i in chunk], headers=headers)


async def list_issue_events(call: Call) -> Response:
    """GET /repos/{owner}/{repo}/issues/{issue_number}/events (label events, oldest first)"""
    repo = call.repo()
    issue = call.emu.state.issue(repo, call.number("number"))
    chunk, headers = hook_log.issues_page(call.request.url, issue.events)
    rendered = [hook_log.issue_event(repo.full_name, e, call.emu.render) for e in chunk]
    return _json(rendered, headers=headers)


async def repo_installation(call: Call) -> Response:
    """GET /repos/{owner}/{repo}/installation (App JWT): the installation on the repository."""
    emu = call.emu
    emu.credentials.check_app_jwt(bearer(call.request.headers.get("authorization")))
    repo = call.repo()
    installation = emu.credentials.installation_of(repo.full_name)
    if installation is None:
        raise ApiError(404, "Not Found")
    return _json(_installation(emu, installation, repo.owner.login))


def _installation(emu: Emulator, installation: int, account: str) -> dict[str, Any]:
    return {
        "id": installation,
        "account": emu.render.user(emu.state.user(account)),
        "app_id": emu.credentials.app_id,
        "target_type": "Organization",
        "suspended_at": "2024-01-01T00:00:00Z"
        if installation in emu.credentials.suspended
        else None,
    }


async def app_installations(call: Call) -> Response:
    """GET /app/installations (App JWT): every installation of the App."""
    emu = call.emu
    emu.credentials.check_app_jwt(bearer(call.request.headers.get("authorization")))
    found = emu.credentials.installations or {emu.credentials.installation_id: ""}
    listed = [_installation(emu, i, account or "ghost") for i, account in sorted(found.items())]
    return _json(listed)


async def installation_repositories(call: Call) -> Response:
    """GET /installation/repositories (an installation token): the repositories it reaches."""
    minted = call.emu.credentials.minted(bearer(call.request.headers.get("authorization")))
    of = call.emu.credentials.installation_of
    repos = sorted(
        (
            r
            for r in call.emu.state.repos.values()
            if minted is None or of(r.full_name) == minted.installation_id
        ),
        key=lambda r: r.id,
    )
    chunk, headers = hook_log.issues_page(call.request.url, repos)
    body = {
        "total_count": len(repos),
        "repositories": [call.emu.render.repo(r) for r in chunk],
    }
    return _json(body, headers=headers)


# -- routing ----------------------------------------------------------------------

Auth = Literal["token", "app"]


@dataclass(frozen=True)
class RestRoute:
    """A route: its counter key is "METHOD template", the template as GitHub documents it."""

    method: str
    template: str
    handler: Handler
    auth: Auth = "token"

    @property
    def key(self) -> str:
        """The counter key, e.g. `POST /repos/{owner}/{repo}/issues/{issue_number}/comments`."""
        return f"{self.method} {self.template}"

    @property
    def starlette_path(self) -> str:
        """The template with our short parameter names and `:path` where slashes are allowed."""
        path = self.template.replace("{issue_number}", "{number}")
        path = path.replace("{pull_number}", "{number}")
        for name in _PATH_PARAMS:
            path = path.replace(f"{{{name}}}", f"{{{name}:path}}")
        return path


_REPO = "/repos/{owner}/{repo}"
ROUTES = (
    RestRoute("GET", _REPO, get_repo),
    RestRoute("GET", f"{_REPO}/issues/{{issue_number}}", get_issue),
    RestRoute("GET", f"{_REPO}/issues/{{issue_number}}/comments", list_comments),
    RestRoute("POST", f"{_REPO}/issues/{{issue_number}}/comments", create_comment),
    RestRoute("GET", f"{_REPO}/issues/{{issue_number}}/labels", list_labels),
    RestRoute("POST", f"{_REPO}/issues/{{issue_number}}/labels", add_labels),
    RestRoute("DELETE", f"{_REPO}/issues/{{issue_number}}/labels/{{name}}", remove_label),
    RestRoute("POST", f"{_REPO}/pulls", create_pull),
    RestRoute("GET", f"{_REPO}/pulls", list_pulls),
    RestRoute("GET", f"{_REPO}/pulls/{{pull_number}}", get_pull),
    RestRoute("PUT", f"{_REPO}/pulls/{{pull_number}}/merge", merge_pull),
    RestRoute("GET", f"{_REPO}/pulls/{{pull_number}}/reviews", list_reviews),
    RestRoute(
        "GET",
        f"{_REPO}/pulls/{{pull_number}}/reviews/{{review_id}}/comments",
        list_review_comments_of_review,
    ),
    RestRoute("GET", f"{_REPO}/pulls/{{pull_number}}/comments", list_review_comments),
    RestRoute(
        "POST",
        f"{_REPO}/pulls/{{pull_number}}/comments/{{comment_id}}/replies",
        reply_to_review_comment,
    ),
    RestRoute("PATCH", f"{_REPO}/issues/comments/{{comment_id}}", edit_comment),
    RestRoute("GET", f"{_REPO}/commits/{{ref}}/check-runs", list_check_runs),
    RestRoute("GET", f"{_REPO}/check-runs/{{check_run_id}}/annotations", list_annotations),
    RestRoute("GET", f"{_REPO}/collaborators/{{username}}/permission", get_permission),
    RestRoute("POST", f"{_REPO}/git/refs", create_ref),
    RestRoute("GET", f"{_REPO}/git/ref/{{ref}}", get_ref),
    RestRoute("GET", f"{_REPO}/contents/{{path}}", get_contents),
    RestRoute("POST", "/app/installations/{installation_id}/access_tokens", access_token, "app"),
    RestRoute("GET", "/user", get_user),
    RestRoute("GET", "/app", get_app, "app"),
    RestRoute("GET", "/app/hook/deliveries", app_hook_deliveries, "app"),
    RestRoute("GET", "/app/hook/deliveries/{delivery_id}", app_hook_delivery, "app"),
    RestRoute("GET", f"{_REPO}/hooks/{{hook_id}}/deliveries", repo_hook_deliveries),
    RestRoute("GET", f"{_REPO}/hooks/{{hook_id}}/deliveries/{{delivery_id}}", repo_hook_delivery),
    RestRoute("GET", f"{_REPO}/issues", list_issues),
    RestRoute("GET", f"{_REPO}/issues/{{issue_number}}/events", list_issue_events),
    RestRoute("GET", "/installation/repositories", installation_repositories),
    RestRoute("GET", f"{_REPO}/installation", repo_installation, "app"),
    RestRoute("GET", "/app/installations", app_installations, "app"),
)


def _caller(emu: Emulator, request: Request, route: RestRoute) -> str:
    """The login acting (token routes) or the App (JWT route); raises 401."""
    if route.auth == "app":
        return "app"  # the JWT is checked by the handler, which mints the token
    return emu.credentials.login_for(request.headers.get("authorization"))


async def _serve(route: RestRoute, request: Request) -> Response:
    emu: Emulator = request.app.state.emulator
    emu.requests[route.key] += 1
    try:
        login = _caller(emu, request, route)
    except ApiError as exc:
        bucket, _ = emu.limiter.take("anonymous")
        return _with_headers(error_response(exc), bucket.headers())
    bucket, allowed = emu.limiter.take(login)
    if not allowed:
        user_id = emu.state.user(login).id
        limited = ApiError(403, f"API rate limit exceeded for user ID {user_id}.")
        return _with_headers(error_response(limited), bucket.headers())
    moved_to = moved.redirect(emu, request)  # a renamed repository's old name
    if moved_to is not None:
        return _with_headers(moved_to, bucket.headers())
    owner, name = request.path_params.get("owner"), request.path_params.get("repo")
    if route.auth == "token" and owner and name:
        try:  # an installation token reaches its own installation's repositories only
            emu.credentials.check_scope(request.headers.get("authorization"), f"{owner}/{name}")
        except ApiError as exc:
            return _with_headers(error_response(exc), bucket.headers())
    handler = functools.partial(route.handler, Call(request, emu, login))
    rule = emu.faults.take(request.method, _GHES_PREFIX.sub("", request.url.path))
    try:
        if rule is None:
            response = await handler()
        else:
            emu.fault_hits[f"{rule.kind} {route.key}"] += 1
            response = await run_with_fault(rule, handler, emu.sleep)
    except ApiError as exc:
        response = error_response(exc)
    if response.status_code == 304:  # GitHub charges no rate limit for an unchanged answer
        emu.not_modified[route.key] += 1
        emu.limiter.refund(login)  # `bucket` is the caller's: its headers show the refund
    return _with_headers(response, bucket.headers())


def _with_headers(response: Response, headers: dict[str, str]) -> Response:
    # setdefault: a primary-rate-limit fault sets its own x-ratelimit-* values.
    for name, value in headers.items():
        response.headers.setdefault(name, value)
    return response


async def _unknown(request: Request) -> Response:
    return error_response(not_found())


def routes() -> list[BaseRoute]:
    """Starlette routes for every REST endpoint plus GitHub's JSON 404 for anything else."""
    table: list[BaseRoute] = []
    for route in ROUTES:
        endpoint = functools.partial(_serve, route)
        table.append(Route(route.starlette_path, _as_function(endpoint), methods=[route.method]))
    return table


def fallback() -> BaseRoute:
    """GitHub's JSON 404 for unknown paths and methods."""
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Route("/{path:path}", _unknown, methods=methods)


def _as_function(
    endpoint: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    # Necessary, not cosmetic: Starlette only treats plain functions and methods as
    # request→response endpoints; a functools.partial would be called as a raw ASGI app.
    async def endpoint_fn(request: Request) -> Response:
        return await endpoint(request)

    return endpoint_fn
