"""The hook-deliveries log as GitHub's REST API shows it, and what reconciliation reads.

Every attempt the sender made is in the log (`WebhookSender.deliveries`): one
entry per attempt with its own numeric `id`, redeliveries sharing the `guid`.
An attempt whose receiver was down has `status_code` 0 and the status GitHub
writes for it. Lists are newest first with GitHub's cursor pagination (`per_page`,
`cursor`, a `Link: rel="next"` carrying the next cursor).

- `GET /app/hook/deliveries`, `GET /app/hook/deliveries/{delivery_id}` (App JWT)
- `GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries` and `…/{delivery_id}` (token)
- `GET /repos/{owner}/{repo}/issues` (`state`, `labels`), `GET …/issues/{n}/events`
- `GET /installation/repositories`
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import URL, QueryParams

from github_emulator.credentials import bearer
from github_emulator.errors import ApiError, not_found
from github_emulator.pagination import DEFAULT_PER_PAGE, MAX_PER_PAGE, paginate
from github_emulator.webhooks import Delivery

CURSOR_PREFIX = "v1_"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(d: Delivery) -> tuple[str, int]:
    """GitHub's `status` text and `status_code` (0: the receiver could not be reached)."""
    if d.status_code is None:
        return "failed to connect to host", 0
    if 200 <= d.status_code < 300:
        return "OK", d.status_code
    return f"Invalid HTTP Response: {d.status_code}", d.status_code


def item(d: Delivery) -> dict[str, Any]:
    """A hook-delivery item, as listed."""
    status, code = _status(d)
    return {
        "id": d.seq,
        "guid": d.guid,
        "delivered_at": _iso(d.delivered_at),
        "redelivery": d.redelivery,
        "duration": d.duration,
        "status": status,
        "status_code": code,
        "event": d.event,
        "action": d.action or None,
        "installation_id": d.installation_id,
        "repository_id": d.repository_id,
        "throttled_at": None,
    }


def detail(d: Delivery, url: str | None) -> dict[str, Any]:
    """One delivery with its request (headers, payload) and response."""
    return {
        **item(d),
        "url": url or "",
        "request": {"headers": dict(d.headers), "payload": d.payload},
        "response": {"headers": {}, "payload": None},
    }


def page(url: URL, deliveries: list[Delivery]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Newest first from `cursor` on, `per_page` of them, with a `Link` to the next page."""
    query = QueryParams(url.query)
    try:
        per_page = int(query.get("per_page") or DEFAULT_PER_PAGE)
    except ValueError:
        per_page = DEFAULT_PER_PAGE
    per_page = min(max(per_page, 1), MAX_PER_PAGE)
    newest_first = sorted(deliveries, key=lambda d: d.seq, reverse=True)
    cursor = query.get("cursor")
    if cursor:
        try:
            before = int(cursor.removeprefix(CURSOR_PREFIX))
        except ValueError:
            raise ApiError(422, "Invalid cursor") from None
        newest_first = [d for d in newest_first if d.seq < before]
    wanted = query.get("status")
    if wanted in ("success", "failure"):
        newest_first = [d for d in newest_first if (_status(d)[0] == "OK") == (wanted == "success")]
    chunk = newest_first[:per_page]
    headers: dict[str, str] = {}
    if len(newest_first) > per_page:
        following = url.include_query_params(
            per_page=per_page, cursor=f"{CURSOR_PREFIX}{chunk[-1].seq}"
        )
        headers["link"] = f'<{following}>; rel="next"'
    return [item(d) for d in chunk], headers


def find(deliveries: list[Delivery], delivery_id: str) -> Delivery:
    """The attempt with numeric id `delivery_id`; 404 otherwise."""
    for d in deliveries:
        if str(d.seq) == delivery_id:
            return d
    raise not_found()


def check_jwt(emu: Any, authorization: str | None) -> None:
    """The App endpoints are authenticated by the App JWT (401 otherwise)."""
    emu.credentials.check_app_jwt(bearer(authorization))


def issue_event(repo_full: str, event: Any, render: Any) -> dict[str, Any]:
    """An issue timeline event (`labeled`/`unlabeled`) with its actor and label."""
    return {
        "id": event.id,
        "node_id": f"LE_{event.id}",
        "url": f"{render.api_url}/repos/{repo_full}/issues/events/{event.id}",
        "actor": render.user(event.actor),
        "event": event.event,
        "created_at": event.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "label": {"name": event.label, "color": "ededed"},
    }


def issues_page(url: URL, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
    """Page-number pagination for issue lists (GitHub's, unlike the deliveries' cursor)."""
    return paginate(url, items)
