"""The admin API under `/_emulator`: set the world up, act as users, inspect, inject faults.

Actions taken "as a user" send their webhooks synchronously: the admin call
returns after the receiver answered, so tests need no sleeps.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from github_emulator.core import Emulator
from github_emulator.errors import ApiError, not_found
from github_emulator.events import Event
from github_emulator.faults import FaultRule
from github_emulator.model import CheckRun, Issue, Repo, ReviewComment
from github_emulator.webhooks import Delivery, Signature

PREFIX = "/_emulator"


def _emu(request: Request) -> Emulator:
    emulator: Emulator = request.app.state.emulator
    return emulator


async def _fields(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        raise ApiError(400, "Problems parsing JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Problems parsing JSON")
    return body


def _repo(request: Request) -> Repo:
    params = request.path_params
    return _emu(request).state.repo(params["owner"], params["repo"])


def _number(request: Request) -> int:
    try:
        return int(request.path_params["number"])
    except ValueError:
        raise not_found() from None


def _user(fields: dict[str, Any], key: str = "user") -> str:
    login = fields.get(key)
    if not isinstance(login, str) or not login:
        raise ApiError(422, f"`{key}` (a login) is required")
    return login


def delivery_summary(delivery: Delivery) -> dict[str, Any]:
    """A delivery without its payload."""
    summary = delivery.as_json()
    del summary["payload"]
    return summary


async def _acted(request: Request, result_id: int, events: list[Event]) -> Response:
    deliveries = await _emu(request).webhooks.dispatch(events, wait=True)
    return JSONResponse({"id": result_id, "deliveries": [delivery_summary(d) for d in deliveries]})


def issue_view(issue: Issue) -> dict[str, Any]:
    """An issue (or PR) as the admin API reports it: labels by name, comments with authors."""
    view: dict[str, Any] = {
        "number": issue.number,
        "title": issue.title,
        "body": issue.body,
        "state": issue.state,
        "author": issue.user.login,
        "labels": [label.name for label in issue.labels],
        "comments": [{"id": c.id, "body": c.body, "author": c.user.login} for c in issue.comments],
        "pull": None,
    }
    if issue.pull is not None:
        view["pull"] = {
            "head": issue.pull.head_ref,
            "head_label": issue.pull.head_label,
            "base": issue.pull.base_ref,
            "merged": issue.pull.merged_at is not None,
            "head_sha": issue.pull.head_sha,
        }
    return view


def review_comment_view(comment: ReviewComment) -> dict[str, Any]:
    """A review comment as the admin API reports it."""
    return {
        "id": comment.id,
        "review_id": comment.review_id,
        "body": comment.body,
        "author": comment.user.login,
        "path": comment.path,
        "line": comment.line,
        "in_reply_to_id": comment.in_reply_to_id,
    }


def check_run_view(run: CheckRun) -> dict[str, Any]:
    """A check run as the admin API reports it."""
    return {
        "id": run.id,
        "suite_id": run.suite_id,
        "name": run.name,
        "head_sha": run.head_sha,
        "status": run.status,
        "conclusion": run.conclusion,
    }


def repo_view(repo: Repo) -> dict[str, Any]:
    """A repository with every issue and PR, its refs and collaborators."""
    return {
        "full_name": repo.full_name,
        "default_branch": repo.default_branch,
        "clone_url": repo.clone_url,
        "issues": [issue_view(i) for i in repo.issues.values()],
        "refs": dict(repo.refs),
        "collaborators": dict(repo.roles),
    }


# -- world setup -----------------------------------------------------------------


async def create_repo(request: Request) -> Response:
    """POST /_emulator/repos {full_name, default_branch?, clone_url?, private?}"""
    fields = await _fields(request)
    repo = _emu(request).state.create_repo(
        str(fields.get("full_name", "")),
        default_branch=str(fields.get("default_branch") or "main"),
        clone_url=fields.get("clone_url") or None,
        private=bool(fields.get("private", False)),
    )
    return JSONResponse(_emu(request).render.repo(repo), status_code=201)


async def rename_repo(request: Request) -> Response:
    """POST /_emulator/repos/{owner}/{repo}/rename {full_name, user?}: rename or transfer;
    the old name's REST URLs then answer 301 (reads) / 307 (other methods)."""
    fields, repo = await _fields(request), _repo(request)
    sender = str(fields.get("user") or repo.owner.login)
    events = _emu(request).state.rename_repo(repo, str(fields.get("full_name", "")), sender=sender)
    deliveries = await _emu(request).webhooks.dispatch(events, wait=True)
    body = _emu(request).render.repo(repo)
    body["deliveries"] = [delivery_summary(d) for d in deliveries]
    return JSONResponse(body)


async def create_issue(request: Request) -> Response:
    """POST /_emulator/repos/{owner}/{repo}/issues {title, body?, author, labels?}"""
    fields, repo = await _fields(request), _repo(request)
    issue, events = _emu(request).state.create_issue(
        repo,
        title=str(fields.get("title", "")),
        body=str(fields.get("body") or ""),
        author=_user(fields, "author"),
        labels=[str(name) for name in fields.get("labels") or []],
    )
    return await _acted(request, issue.number, events)


async def set_permission(request: Request) -> Response:
    """PUT /_emulator/repos/{owner}/{repo}/collaborators/{username} {permission}"""
    fields = await _fields(request)
    permission = str(fields.get("permission", "write"))
    _emu(request).state.set_role(_repo(request), request.path_params["username"], permission)
    return JSONResponse({"permission": permission})


async def put_token(request: Request) -> Response:
    """PUT /_emulator/tokens/{token} {login}: accept another token acting as `login`."""
    fields = await _fields(request)
    _emu(request).credentials.tokens[request.path_params["token"]] = _user(fields, "login")
    return JSONResponse({"ok": True})


async def revoke_tokens(request: Request) -> Response:
    """DELETE /_emulator/installation-tokens: every minted App token stops working (401)."""
    _emu(request).credentials.revoke_installation_tokens()
    return JSONResponse({"ok": True})


async def installation_action(request: Request) -> Response:
    """POST /_emulator/installations/{installation_id}/{action} {user?, repos?}: suspend,
    unsuspend or delete an App installation, or remove/add repositories (`repos`, full
    names); sends the `installation` / `installation_repositories` webhook."""
    emu, fields = _emu(request), await _fields(request)
    installation, action = (
        int(request.path_params["installation_id"]),
        request.path_params["action"],
    )
    credentials = emu.credentials
    account = emu.state.user(credentials.installations.get(installation, "ghost"))
    sender = emu.state.user(str(fields.get("user") or account.login))
    if action in ("removed", "added"):
        repos = [emu.state.repo(*str(n).split("/", 1)) for n in fields.get("repos") or []]
        event = emu.state.events.installation_repositories(
            action, installation, account, repos, sender
        )
    elif action in ("suspend", "unsuspend", "deleted"):
        if action == "suspend":
            credentials.suspended.add(installation)
        elif action == "unsuspend":
            credentials.suspended.discard(installation)
        event = emu.state.events.installation(action, installation, account, sender)
    else:
        raise ApiError(422, f"unknown installation action {action!r}")
    deliveries = await emu.webhooks.dispatch([event], wait=True)
    return JSONResponse([delivery_summary(d) for d in deliveries])


async def list_mints(request: Request) -> Response:
    """GET /_emulator/installation-tokens: every installation token minted, in order."""
    return JSONResponse(
        [
            {
                "installation_id": m.installation_id,
                "repositories": None if m.repositories is None else list(m.repositories),
                "permissions": m.permissions,
                "token": m.token,
            }
            for m in _emu(request).credentials.mints
        ]
    )


# -- acting as a user ------------------------------------------------------------


async def add_labels(request: Request) -> Response:
    """POST .../issues/{number}/labels {user, labels}: sends `labeled` webhooks."""
    fields, repo = await _fields(request), _repo(request)
    names = [str(name) for name in fields.get("labels") or []]
    _, events = _emu(request).state.add_labels(repo, _number(request), names, _user(fields))
    return await _acted(request, _number(request), events)


async def remove_label(request: Request) -> Response:
    """DELETE .../issues/{number}/labels/{name}?user=: sends an `unlabeled` webhook."""
    user = request.query_params.get("user", "")
    _, events = _emu(request).state.remove_label(
        _repo(request), _number(request), request.path_params["name"], _user({"user": user})
    )
    return await _acted(request, _number(request), events)


async def comment(request: Request) -> Response:
    """POST .../issues/{number}/comments {user, body}: sends `issue_comment.created`."""
    fields = await _fields(request)
    created, events = _emu(request).state.add_comment(
        _repo(request), _number(request), str(fields.get("body") or ""), _user(fields)
    )
    return await _acted(request, created.id, events)


async def open_pull(request: Request) -> Response:
    """POST .../pulls {user, title, head, base?, body?}: a PR opened by a person."""
    fields, repo = await _fields(request), _repo(request)
    issue, events = _emu(request).state.create_pull(
        repo,
        title=str(fields.get("title", "")),
        head=str(fields.get("head", "")),
        base=str(fields.get("base") or repo.default_branch),
        body=str(fields.get("body") or ""),
        author=_user(fields),
    )
    return await _acted(request, issue.number, events)


async def merge(request: Request) -> Response:
    """POST .../pulls/{number}/merge {user}: sends `pull_request.closed` with `merged: true`."""
    fields = await _fields(request)
    issue, events = _emu(request).state.merge_pull(_repo(request), _number(request), _user(fields))
    return await _acted(request, issue.number, events)


async def submit_review(request: Request) -> Response:
    """POST .../pulls/{number}/reviews {user, state, body?, comments?: [{path, line, body}]}

    Sends `pull_request_review.submitted`, then `pull_request_review_comment.created`
    per comment; answers `{id: review id, comment_ids, deliveries}`.
    """
    fields = await _fields(request)
    comments = fields.get("comments") or []
    if not isinstance(comments, list) or not all(isinstance(c, dict) for c in comments):
        raise ApiError(422, "`comments` must be a list of {path, line, body}")
    review, created, events = _emu(request).state.submit_review(
        _repo(request),
        _number(request),
        author=_user(fields),
        state=str(fields.get("state") or ""),
        body=str(fields.get("body") or ""),
        comments=comments,
    )
    deliveries = await _emu(request).webhooks.dispatch(events, wait=True)
    return JSONResponse(
        {
            "id": review.id,
            "comment_ids": [c.id for c in created],
            "deliveries": [delivery_summary(d) for d in deliveries],
        }
    )


async def review_comment(request: Request) -> Response:
    """POST .../pulls/{number}/review-comments {user, body, path, line} or {user, body, in_reply_to}

    A single line comment (GitHub files it in a `COMMENTED` review) or a reply in a
    thread; `id` is the new review comment's id.
    """
    fields = await _fields(request)
    state, repo, number, user = _emu(request).state, _repo(request), _number(request), _user(fields)
    body, reply_to = str(fields.get("body") or ""), fields.get("in_reply_to")
    if reply_to is not None:
        if not isinstance(reply_to, int):
            raise ApiError(422, "`in_reply_to` must be a review comment id")
        reply, events = state.reply_to_review_comment(repo, number, reply_to, body, user)
        return await _acted(request, reply.id, events)
    spec = {"path": fields.get("path"), "line": fields.get("line"), "body": body}
    _, [created], events = state.submit_review(
        repo, number, author=user, state="COMMENTED", comments=[spec]
    )
    return await _acted(request, created.id, events)


async def list_review_comments(request: Request) -> Response:
    """GET .../pulls/{number}/review-comments: every review comment and reply, ascending id."""
    comments = _emu(request).state.review_comments(_repo(request), _number(request))
    return JSONResponse([review_comment_view(c) for c in comments])


async def list_reviews(request: Request) -> Response:
    """GET .../pulls/{number}/reviews: the PR's reviews, oldest first (state as REST spells it)."""
    issue = _emu(request).state.pull(_repo(request), _number(request))
    assert issue.pull is not None
    return JSONResponse(
        [
            {"id": r.id, "state": r.state, "body": r.body, "author": r.user.login}
            for r in issue.pull.reviews
        ]
    )


async def complete_checks(request: Request) -> Response:
    """POST .../commits/{sha}/check-suites {runs: [{name, conclusion, title?, summary?, text?,
    annotations?: [{path, start_line, message}]}], app?}

    Sends `check_run.completed` per run, then `check_suite.completed`; answers
    `{id: suite id, conclusion, run_ids, deliveries}`.
    """
    fields = await _fields(request)
    runs = fields.get("runs")
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise ApiError(422, "`runs` must be a list of check runs")
    suite, created, events = _emu(request).state.complete_checks(
        _repo(request),
        str(request.path_params["sha"]),
        runs,
        app=str(fields.get("app") or "github-actions"),
    )
    deliveries = await _emu(request).webhooks.dispatch(events, wait=True)
    return JSONResponse(
        {
            "id": suite.id,
            "conclusion": suite.conclusion,
            "run_ids": [r.id for r in created],
            "deliveries": [delivery_summary(d) for d in deliveries],
        }
    )


async def list_check_runs(request: Request) -> Response:
    """GET .../commits/{ref}/check-runs: every run on the commit (`filter=all`), oldest first."""
    runs = _emu(request).state.check_runs(
        _repo(request), str(request.path_params["ref"]), latest=False
    )
    return JSONResponse([check_run_view(r) for r in runs])


async def push(request: Request) -> Response:
    """POST .../branches/{branch}/push {user, sha?}: move the branch (a fresh SHA by default).

    Open PRs from the branch get the new head and send `pull_request.synchronize`;
    answers `{sha, deliveries}`.
    """
    fields = await _fields(request)
    sha = fields.get("sha")
    new_sha, events = _emu(request).state.push(
        _repo(request),
        str(request.path_params["branch"]),
        _user(fields),
        sha if isinstance(sha, str) and sha else None,
    )
    deliveries = await _emu(request).webhooks.dispatch(events, wait=True)
    return JSONResponse({"sha": new_sha, "deliveries": [delivery_summary(d) for d in deliveries]})


async def put_file(request: Request) -> Response:
    """PUT .../contents/{path} {user, content (null: remove), branch?}: commit the file to the
    branch (the default one unless named); sends `push` (and any `synchronize`)."""
    fields = await _fields(request)
    repo = _repo(request)
    content = fields.get("content")
    if content is not None and not isinstance(content, str):
        return JSONResponse({"message": "content must be a string or null"}, 422)
    branch = str(fields.get("branch") or repo.default_branch)
    sha, events = _emu(request).state.put_file(
        repo, branch, str(request.path_params["path"]), content, _user(fields)
    )
    deliveries = await _emu(request).webhooks.dispatch(events, wait=True)
    return JSONResponse({"sha": sha, "deliveries": [delivery_summary(d) for d in deliveries]})


# -- inspection --------------------------------------------------------------------


async def state(request: Request) -> Response:
    """GET /_emulator/state: every repository, issue, PR, comment and label."""
    return JSONResponse({"repos": [repo_view(r) for r in _emu(request).state.repos.values()]})


async def get_issue(request: Request) -> Response:
    """GET .../issues/{number}: one issue or PR view."""
    return JSONResponse(issue_view(_emu(request).state.issue(_repo(request), _number(request))))


async def list_pulls(request: Request) -> Response:
    """GET .../pulls: every PR of the repository, oldest first."""
    issues = _repo(request).issues.values()
    return JSONResponse([issue_view(i) for i in issues if i.pull is not None])


async def counters(request: Request) -> Response:
    """GET /_emulator/counters: requests per route template, faults fired per kind and route."""
    emu = _emu(request)
    return JSONResponse(
        {
            "requests": dict(emu.requests),
            "faults": dict(emu.fault_hits),
            "not_modified": dict(emu.not_modified),
        }
    )


async def reset_counters(request: Request) -> Response:
    """DELETE /_emulator/counters"""
    _emu(request).reset_counters()
    return JSONResponse({"ok": True})


# -- faults --------------------------------------------------------------------------


async def add_fault(request: Request) -> Response:
    """POST /_emulator/faults {method, path, kind, times?, seconds?, retry_after?, status?, apply?}"""
    fields = await _fields(request)
    try:
        rule = FaultRule(
            method=str(fields.get("method", "*")),
            path=str(fields["path"]),
            kind=fields["kind"],
            times=fields.get("times", 1),
            seconds=float(fields.get("seconds", 1.0)),
            retry_after=fields.get("retry_after", 1),
            status=int(fields.get("status", 403)),
            apply=bool(fields.get("apply", True)),
        )
    except (KeyError, ValueError, TypeError, re.error) as exc:
        raise ApiError(422, f"bad fault rule: {exc}") from None
    return JSONResponse(_emu(request).faults.add(rule).as_json(), status_code=201)


async def list_faults(request: Request) -> Response:
    """GET /_emulator/faults"""
    return JSONResponse([rule.as_json() for rule in _emu(request).faults.rules])


async def clear_faults(request: Request) -> Response:
    """DELETE /_emulator/faults"""
    _emu(request).faults.clear()
    return JSONResponse({"ok": True})


# -- webhooks ------------------------------------------------------------------------


async def configure_webhooks(request: Request) -> Response:
    """PUT /_emulator/webhooks {url, secret}"""
    fields = await _fields(request)
    _emu(request).webhooks.configure(fields.get("url") or None, fields.get("secret") or None)
    return JSONResponse({"ok": True})


async def list_deliveries(request: Request) -> Response:
    """GET /_emulator/webhooks/deliveries: every attempt, payloads included."""
    return JSONResponse([d.as_json() for d in _emu(request).webhooks.deliveries])


async def redeliver(request: Request) -> Response:
    """POST /_emulator/webhooks/deliveries/{id}/redeliver {concurrent?}: same delivery id."""
    fields = await _fields(request)
    try:
        copies = await _emu(request).webhooks.redeliver(
            request.path_params["guid"], concurrent=int(fields.get("concurrent", 1))
        )
    except KeyError:
        raise not_found() from None
    return JSONResponse([delivery_summary(d) for d in copies])


async def send_webhook(request: Request) -> Response:
    """POST /_emulator/webhooks/send {event, payload, signature?}: any payload, any signature."""
    fields = await _fields(request)
    payload = fields.get("payload")
    if not isinstance(payload, dict):
        raise ApiError(422, "`payload` must be an object")
    try:
        signature = Signature(fields.get("signature", "valid"))
    except ValueError:
        raise ApiError(422, "unknown signature mode") from None
    event = Event(str(fields.get("event", "")), payload)
    delivery = await _emu(request).webhooks.send(event, signature)
    return JSONResponse(delivery_summary(delivery))


async def wait_webhooks(request: Request) -> Response:
    """POST /_emulator/webhooks/wait: returns once background deliveries are answered."""
    await _emu(request).webhooks.wait_idle()
    return JSONResponse({"ok": True})


# -- routing --------------------------------------------------------------------------

Endpoint = Callable[[Request], Awaitable[Response]]


def _guarded(endpoint: Endpoint) -> Endpoint:
    """Answer `ApiError`s as JSON (the REST routes do the same in their wrapper)."""

    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ApiError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)

    return guarded


_REPO = PREFIX + "/repos/{owner}/{repo}"
_TABLE: tuple[tuple[str, str, Endpoint], ...] = (
    ("POST", PREFIX + "/repos", create_repo),
    ("POST", _REPO + "/rename", rename_repo),
    ("POST", _REPO + "/issues", create_issue),
    ("GET", _REPO + "/issues/{number}", get_issue),
    ("POST", _REPO + "/issues/{number}/labels", add_labels),
    ("DELETE", _REPO + "/issues/{number}/labels/{name:path}", remove_label),
    ("POST", _REPO + "/issues/{number}/comments", comment),
    ("GET", _REPO + "/pulls", list_pulls),
    ("POST", _REPO + "/pulls", open_pull),
    ("POST", _REPO + "/pulls/{number}/merge", merge),
    ("POST", _REPO + "/pulls/{number}/reviews", submit_review),
    ("GET", _REPO + "/pulls/{number}/reviews", list_reviews),
    ("POST", _REPO + "/pulls/{number}/review-comments", review_comment),
    ("GET", _REPO + "/pulls/{number}/review-comments", list_review_comments),
    ("POST", _REPO + "/commits/{sha}/check-suites", complete_checks),
    ("GET", _REPO + "/commits/{ref:path}/check-runs", list_check_runs),
    ("POST", _REPO + "/branches/{branch:path}/push", push),
    ("PUT", _REPO + "/contents/{path:path}", put_file),
    ("PUT", _REPO + "/collaborators/{username}", set_permission),
    ("PUT", PREFIX + "/tokens/{token}", put_token),
    ("DELETE", PREFIX + "/installation-tokens", revoke_tokens),
    ("GET", PREFIX + "/installation-tokens", list_mints),
    ("POST", PREFIX + "/installations/{installation_id}/{action}", installation_action),
    ("GET", PREFIX + "/state", state),
    ("GET", PREFIX + "/counters", counters),
    ("DELETE", PREFIX + "/counters", reset_counters),
    ("POST", PREFIX + "/faults", add_fault),
    ("GET", PREFIX + "/faults", list_faults),
    ("DELETE", PREFIX + "/faults", clear_faults),
    ("PUT", PREFIX + "/webhooks", configure_webhooks),
    ("GET", PREFIX + "/webhooks/deliveries", list_deliveries),
    ("POST", PREFIX + "/webhooks/deliveries/{guid}/redeliver", redeliver),
    ("POST", PREFIX + "/webhooks/send", send_webhook),
    ("POST", PREFIX + "/webhooks/wait", wait_webhooks),
)


def routes() -> list[BaseRoute]:
    """Starlette routes of the admin API."""
    return [Route(path, _guarded(fn), methods=[method]) for method, path, fn in _TABLE]
