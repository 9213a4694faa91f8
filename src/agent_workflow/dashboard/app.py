"""The dashboard's pages and forms, mounted at `/dashboard` by `aw serve`.

Every page is rendered on the server from bounded reads (`store.dashboard`) with
Jinja2 autoescaping: titles, reasons and errors come from GitHub or the agent and are
shown as text, never as markup. Responses forbid framing, scripts and other origins
(`Content-Security-Policy`) and caching. See `dashboard.auth` for who gets in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jinja2
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from agent_workflow.config import Settings
from agent_workflow.core.clock import now
from agent_workflow.core.model import Phase
from agent_workflow.dashboard import views
from agent_workflow.dashboard.actions import Actions, Enqueue, retryable
from agent_workflow.dashboard.auth import (
    COOKIE,
    FAILED_LOGIN_DELAY_S,
    PREFIX,
    SESSION_S,
    Gate,
    Session,
    bearer,
    safe_next,
    same_origin,
)
from agent_workflow.dashboard.timeline import timeline
from agent_workflow.store import Store
from agent_workflow.store.dashboard import DashboardReads, TaskFilter

log = structlog.get_logger(__name__)

PAGE_SIZE = 50  # tasks per page: one screen, a few statements
MAX_PAGE_SIZE = 200
MAX_REPOS = 500  # the repository filter's choices
TOTALS_DAYS = 30  # the totals cover the tasks created in the last month
MAX_OFFSET = 1_000_000
# The pages' forms hold a token, a CSRF token and an id or two: a few hundred bytes.
MAX_FORM_BYTES = 16_384
MAX_FORM_FIELDS = 10
HEADERS = {
    # Nothing but this server's own stylesheet; no script at all; forms post here only.
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
_STATES = tuple(w.value for w in views.StateWord)


@dataclass(frozen=True)
class _Pages:
    """The request handlers and what they share."""

    store: Store
    reads: DashboardReads
    gate: Gate
    actions: Actions
    links: views.Links
    clock: Callable[[], float]
    templates: jinja2.Environment

    def render(
        self,
        name: str,
        status: int = 200,
        *,
        session: Session | None = None,
        **context: Any,
    ) -> HTMLResponse:
        html = self.templates.get_template(name).render(
            prefix=PREFIX,
            csrf=self.gate.csrf_token(session) if session is not None else "",
            cookie_session=session is not None and not session.bearer,
            views=views,
            now=self.clock(),
            **context,
        )
        return HTMLResponse(html, status, headers=HEADERS)

    async def authenticated(self, request: Request) -> Session | None:
        """The session of a logged-in browser or a bearer client; a wrong bearer waits."""
        token = bearer(request)
        if token is not None:
            if self.gate.token_ok(token):
                return Session("bearer", bearer=True)
            await self.gate.failed()
            return None
        return self.gate.session(request)

    async def refuse(self, request: Request) -> Response:
        """401 for API clients; a browser is sent to the login form (and back)."""
        if bearer(request) is not None or "text/html" not in request.headers.get("accept", ""):
            return Response("authentication required", 401, {"www-authenticate": "Bearer"})
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        query = urlencode({"next": safe_next(target)})
        return RedirectResponse(f"{PREFIX}/login?{query}", 303, headers=HEADERS)

    # -- login ---------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        nxt = safe_next(request.query_params.get("next"))
        return self.render("login.html", next=nxt, error=None)

    async def login(self, request: Request) -> Response:
        form = await _form(request)
        if form is None:
            return Response("form too large", 413, headers=HEADERS)
        nxt = safe_next(form.get("next", ""))
        if not same_origin(request):
            return Response("cross-origin login refused", 403, headers=HEADERS)
        if not self.gate.token_ok(form.get("token", "")):
            await self.gate.failed()
            log.warning("dashboard.login_failed", attempts=self.gate.failed_attempts)
            return self.render("login.html", 401, next=nxt, error="That token is not right.")
        response = RedirectResponse(nxt, 303, headers=HEADERS)
        response.set_cookie(
            COOKIE,
            self.gate.new_cookie(),
            max_age=SESSION_S,
            path=PREFIX,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        log.info("dashboard.login")
        return response

    async def logout(self, request: Request) -> Response:
        response = RedirectResponse(f"{PREFIX}/login", 303, headers=HEADERS)
        response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict")
        return response

    # -- pages ---------------------------------------------------------------------

    async def tasks(self, request: Request) -> Response:
        session = await self.authenticated(request)
        if session is None:
            return await self.refuse(request)
        q = request.query_params
        state = q.get("state", "")
        f = TaskFilter(
            repo=q.get("repo", "")[:300],
            state=state if state in _STATES else "",
            blocked=q.get("blocked") == "1",
            dead_lettered=q.get("dead") == "1",
        )
        limit = min(max(_int(q.get("limit"), PAGE_SIZE), 1), MAX_PAGE_SIZE)
        offset = min(max(_int(q.get("offset"), 0), 0), MAX_OFFSET)
        page = await self.reads.task_page(f, limit=limit, offset=offset)
        repos = await self.reads.repos(MAX_REPOS)
        by_repo, by_day = views.totals(
            await self.reads.outcomes(self.clock() - TOTALS_DAYS * 86400)
        )
        base = {
            k: v
            for k, v in (
                ("repo", f.repo),
                ("state", f.state),
                ("blocked", "1" if f.blocked else ""),
                ("dead", "1" if f.dead_lettered else ""),
                ("limit", str(limit) if limit != PAGE_SIZE else ""),
            )
            if v
        }
        more = (
            f"?{urlencode({**base, 'offset': offset + limit})}"
            if offset + limit < page.total
            else None
        )
        less = f"?{urlencode({**base, 'offset': max(offset - limit, 0)})}" if offset else None
        return self.render(
            "tasks.html",
            session=session,
            page=page,
            filter=f,
            repos=repos,
            states=_STATES,
            offset=offset,
            more=more,
            less=less,
            by_repo=by_repo,
            by_day=by_day,
            totals_days=TOTALS_DAYS,
            links=self.links,
        )

    async def task(self, request: Request) -> Response:
        session = await self.authenticated(request)
        if session is None:
            return await self.refuse(request)
        history = await self.reads.task_history(request.path_params["task_id"])
        if history is None:
            return self.render("missing.html", 404, session=session)
        statuses = {p["phase"]: p["status"] for p in history.phases}
        return self.render(
            "task.html",
            session=session,
            h=history,
            t=history.task,
            timeline=timeline(history, self.links, self.clock()),
            retry_phase=retryable(statuses) if self.actions.actor else None,
            actor=self.actions.actor,
            links=self.links,
            notice=request.query_params.get("notice", "")[:100],
        )

    async def dead_letters(self, request: Request) -> Response:
        session = await self.authenticated(request)
        if session is None:
            return await self.refuse(request)
        offset = min(max(_int(request.query_params.get("offset"), 0), 0), MAX_OFFSET)
        total, rows = await self.reads.dead_letters(limit=PAGE_SIZE, offset=offset)
        return self.render(
            "dead_letters.html",
            session=session,
            total=total,
            rows=rows,
            offset=offset,
            page_size=PAGE_SIZE,
            notice=request.query_params.get("notice", "")[:100],
        )

    # -- the actions ---------------------------------------------------------------

    async def _allowed_form(self, request: Request) -> dict[str, str] | Response:
        """The form of a POST allowed to change state, else the refusal to send."""
        session = await self.authenticated(request)
        if session is None:
            return Response("authentication required", 401, headers=HEADERS)
        form = await _form(request)
        if form is None:
            return Response("form too large", 413, headers=HEADERS)
        if not session.bearer:
            # A bearer header cannot be sent by another site's form; a cookie can.
            if not same_origin(request):
                return Response("cross-origin request refused", 403, headers=HEADERS)
            if not self.gate.csrf_ok(session, form.get("csrf", "")):
                log.warning("dashboard.csrf_refused", path=request.url.path)
                return Response("CSRF token missing or wrong", 403, headers=HEADERS)
        return form

    async def retry(self, request: Request) -> Response:
        form = await self._allowed_form(request)
        if isinstance(form, Response):
            return form
        task_id: int = request.path_params["task_id"]
        history = await self.reads.task_history(task_id)
        if history is None:
            return Response("no such task", 404, headers=HEADERS)
        phase = retryable({p["phase"]: p["status"] for p in history.phases})
        if not self.actions.actor:
            return Response("retry is not enabled (AW_DASHBOARD_ACTOR)", 403, headers=HEADERS)
        if phase is None or phase != form.get("phase"):
            return _back(f"{PREFIX}/tasks/{task_id}", "nothing to retry")
        delivery = await self.actions.retry(task_id, Phase(phase))
        return _back(f"{PREFIX}/tasks/{task_id}", "retry requested" if delivery else "no task")

    async def redrive(self, request: Request) -> Response:
        form = await self._allowed_form(request)
        if isinstance(form, Response):
            return form
        delivery_id = form.get("delivery_id", "")[:200]
        hook_id = form.get("hook_id", "")[:100]
        done = await self.actions.redrive(delivery_id, hook_id)
        return _back(f"{PREFIX}/dead-letters", "re-driven" if done else "not dead-lettered")


async def _form(request: Request) -> dict[str, str] | None:
    """A posted form (URL-encoded, as the pages send it), or None past `MAX_FORM_BYTES`:
    the login form is open to anyone, so its body is bounded before it is parsed."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return {}
    return dict(pairs)


def _back(path: str, notice: str) -> Response:
    return RedirectResponse(f"{path}?{urlencode({'notice': notice})}", 303, headers=HEADERS)


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def create_dashboard(
    store: Store,
    enqueue: Enqueue,
    *,
    token: str,
    actor: str,
    github_api_url: str,
    clock: Callable[[], float],
    failure_delay_s: float,
) -> Starlette:
    """The dashboard app, to be mounted at `/dashboard` (only when a token is set)."""
    templates = jinja2.Environment(
        loader=jinja2.PackageLoader("agent_workflow.dashboard", "templates"),
        autoescape=True,  # every template, whatever its name: GitHub text is hostile
        undefined=jinja2.StrictUndefined,
    )
    pages = _Pages(
        store,
        DashboardReads(store.db),
        Gate(token, clock=clock, failure_delay_s=failure_delay_s),
        Actions(store, enqueue, actor, clock),
        views.Links(views.web_base(github_api_url)),
        clock,
        templates,
    )
    return Starlette(
        routes=[
            Route("/", pages.tasks, methods=["GET"]),
            Route("/login", pages.login_form, methods=["GET"]),
            Route("/login", pages.login, methods=["POST"]),
            Route("/logout", pages.logout, methods=["POST"]),
            Route("/tasks/{task_id:int}", pages.task, methods=["GET"]),
            Route("/tasks/{task_id:int}/retry", pages.retry, methods=["POST"]),
            Route("/dead-letters", pages.dead_letters, methods=["GET"]),
            Route("/dead-letters/redrive", pages.redrive, methods=["POST"]),
            Mount("/static", StaticFiles(packages=[("agent_workflow.dashboard", "static")])),
        ]
    )


def dashboard_for(settings: Settings, store: Store, enqueue: Enqueue) -> Starlette | None:
    """The dashboard `aw serve` mounts at `/dashboard`, or None when `AW_DASHBOARD_TOKEN`
    is unset (then there is no such path: 404)."""
    if settings.dashboard_token is None:
        return None
    return create_dashboard(
        store,
        enqueue,
        token=settings.dashboard_token.get_secret_value(),
        actor=settings.dashboard_actor,
        github_api_url=settings.github_api_url,
        clock=now,
        failure_delay_s=FAILED_LOGIN_DELAY_S,
    )
