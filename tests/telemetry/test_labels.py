"""Label sets stay bounded: no path, header or model id from outside becomes a label value.

Every distinct label value is a time series Prometheus keeps; a value an attacker can
choose (a label name in a URL, an `X-GitHub-Event` header) would let anyone grow them
without bound, and would carry their text into dashboards. These tests send hostile
values through the real recording paths and check every label of the whole page
against the closed set it may come from.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from agent_workflow.config import Settings
from agent_workflow.core.effects import EffectKind
from agent_workflow.core.model import Phase, PhaseStatus
from agent_workflow.forge.http import GitHubHttp
from agent_workflow.forge.policy import RequestPolicy
from agent_workflow.ingress.app import create_app
from agent_workflow.service.runtime import triggers_from
from agent_workflow.store import connect
from agent_workflow.telemetry import recorder
from agent_workflow.telemetry.forge_routes import OTHER, ROUTES, route_of
from agent_workflow.telemetry.recorder import PrometheusTelemetry
from tests.telemetry.helpers import Samples, delta, parse, scrape

HOSTILE = '"} 1\naw_evil_total{x="@everyone <script>'

_NUMBER = frozenset(str(n) for n in range(100, 600)) | {"error", "0"}
ALLOWED: dict[str, frozenset[str]] = {
    "route": frozenset(t.replace("+}", "}") for t in ROUTES) | {OTHER},
    "method": frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OTHER"}),
    "status": _NUMBER,
    "phase": frozenset(p.value for p in Phase),
    "mode": frozenset({"fresh", "resume"}),
    "stage": frozenset({"agent", "effects"}),
    "result": frozenset({"performed", "reconciled", "adopted", "terminal"}),
    "kind": frozenset(k.value for k in EffectKind)
    | {"delivery", "phase", "input", "output", "cache_creation", "cache_read"},
    "outcome": frozenset({"received", "duplicate", "ignored", "rejected", "unavailable"})
    | frozenset(s.value for s in PhaseStatus)
    | {"other"},
    "model": frozenset({"opus", "sonnet", "haiku", "other"}),
    "state": frozenset({"queued", "running", "waiting", "active", "delayed", "prioritized"})
    | {"failed"},
}


def assert_bounded(samples: Samples) -> None:
    """Every label of every sample is one its name allows (`le`: a histogram bucket)."""
    for name, labels in samples:
        for label, value in labels:
            if label == "le":
                float(value)  # a bucket bound, from the code
                continue
            assert label in ALLOWED, f"{name}: unexpected label {label}={value!r}"
            assert value in ALLOWED[label], f"{name}: {label}={value!r} is not a known value"


def test_route_of__github_paths_become_their_documented_templates() -> None:
    cases = {
        "/repos/octo/demo/issues/7/comments": "/repos/{owner}/{repo}/issues/{issue_number}/comments",
        "/repos/octo/demo/issues/comments/99": "/repos/{owner}/{repo}/issues/comments/{comment_id}",
        "/repos/octo/demo/issues/7/labels/agent%20blocked": (
            "/repos/{owner}/{repo}/issues/{issue_number}/labels/{name}"
        ),
        "/repos/octo/demo/contents/.github/agent-workflow.yml": (
            "/repos/{owner}/{repo}/contents/{path}"
        ),
        "/repos/octo/demo/git/ref/heads/agent/issue-7": "/repos/{owner}/{repo}/git/ref/{ref}",
        "/repos/octo/demo/pulls/3/comments/5/replies": (
            "/repos/{owner}/{repo}/pulls/{pull_number}/comments/{comment_id}/replies"
        ),
        "/app/installations/12/access_tokens": "/app/installations/{installation_id}/access_tokens",
        "/user": "/user",
        # Not a route the adapter calls, or a number where a number belongs is not one:
        "/repos/octo/demo/issues/seven/comments": OTHER,
        "/repos/octo/demo/secret-scanning/alerts": OTHER,
        "/": OTHER,
        "/" + "a/" * 3000: OTHER,
    }
    assert {path: route_of(path) for path in cases} == cases


async def test_github_requests__hostile_paths_never_become_labels() -> None:
    """Window: a label name, file path or ref chosen by whoever writes the issue ends up
    in a request URL; the metric shows the route template (or `other`), never the text."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={})

    http = GitHubHttp(
        _NoAuth(),
        base_url="https://ghes.example/api/v3",  # a prefix the label must not carry either
        policy=RequestPolicy.fast(),
        transport=httpx.MockTransport(answer),
    )
    before = await scrape()
    hostile = quote(HOSTILE, safe="")  # as the adapter quotes what it puts in a path
    paths = [
        f"/repos/octo/demo/issues/7/labels/{hostile}",
        f"/repos/octo/demo/contents/{hostile}/x.md",
        f"/repos/{hostile}/demo/issues/7/comments",
        f"/{hostile}",
        "/repos/octo/demo/issues/7/comments",
    ]
    try:
        for path in paths:
            await http.request("GET", path)
        await http.request("PURGE", "/repos/octo/demo")
    finally:
        await http.aclose()
    after = await scrape()
    page = (await _page()).lower()
    assert "evil" not in page
    assert "everyone" not in page
    assert "ghes.example" not in page
    assert_bounded(after)
    grown = {
        route: delta(after, before, "aw_github_requests_total", route=route, status="200")
        for route in (
            "/repos/{owner}/{repo}/issues/{issue_number}/labels/{name}",
            "/repos/{owner}/{repo}/contents/{path}",
            "/repos/{owner}/{repo}/issues/{issue_number}/comments",
            OTHER,
        )
    }
    # The owner segment is one segment whatever its text: a valid path, counted as one.
    assert grown == {
        "/repos/{owner}/{repo}/issues/{issue_number}/labels/{name}": 1,
        "/repos/{owner}/{repo}/contents/{path}": 1,
        "/repos/{owner}/{repo}/issues/{issue_number}/comments": 2,
        OTHER: 1,
    }
    assert delta(after, before, "aw_github_requests_total", method="OTHER") == 1


async def test_webhook__hostile_headers_are_counted_never_labelled(tmp_path: Path) -> None:
    """Window: a sender (no valid signature) sets `X-GitHub-Event` and the delivery id to
    text of its choosing; the rejection is counted under a fixed outcome."""
    store = await connect(f"sqlite:///{tmp_path / 'aw.db'}")
    try:
        app = create_app(
            store,
            _never_accepted,
            secret="s3cret",
            max_body_bytes=1024,
            triggers=triggers_from(Settings()),
            body_timeout_s=5.0,
        )
        before = await scrape()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://aw"
        ) as client:
            answer = await client.post(
                "/webhooks/github",
                content=b"{}",
                headers={
                    "x-github-event": HOSTILE.replace("\n", " "),
                    "x-github-delivery": HOSTILE.replace("\n", " "),
                    "x-hub-signature-256": "sha256=" + "0" * 64,
                },
            )
            assert answer.status_code == 401
            page = await client.get("/metrics")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/plain")
        after = parse(page.text)
    finally:
        await store.close()
    assert "evil" not in page.text
    assert "everyone" not in page.text
    assert_bounded(after)
    assert delta(after, before, "aw_webhook_deliveries_total", outcome="rejected") == 1
    assert delta(after, before, "aw_webhook_deliveries_total") == 1


async def test_model_usage__an_unknown_model_id_is_other() -> None:
    before = await scrape()
    recorder.model_usage(
        Phase.PLAN,
        HOSTILE,
        input_tokens=10,
        output_tokens=5,
        cache_creation_tokens=0,
        cache_read_tokens=2,
        cost_usd=0.25,
    )
    recorder.model_usage(
        Phase.PLAN,
        "claude-sonnet-4-5-20250929",
        input_tokens=1,
        output_tokens=1,
        cache_creation_tokens=0,
        cache_read_tokens=0,
        cost_usd=0.0,
    )
    after = await scrape()
    assert_bounded(after)
    tokens = "aw_model_tokens_total"
    assert delta(after, before, tokens, model="other", kind="input", phase="plan") == 10
    assert delta(after, before, tokens, model="other", kind="output") == 5
    assert delta(after, before, tokens, model="other", kind="cache_read") == 2
    assert delta(after, before, tokens, model="sonnet") == 2
    assert delta(after, before, "aw_model_cost_usd_total", model="other") == pytest.approx(0.25)


async def test_core_reports__land_on_phase_and_round_histograms() -> None:
    telemetry = PrometheusTelemetry()
    before = await scrape()
    telemetry.attempt_finished(Phase.DELIVER, PhaseStatus.COMPLETE, 42.0)
    telemetry.attempt_finished(Phase.REVISE, PhaseStatus.BLOCKED, 7.0)
    telemetry.attempt_finished(Phase.PLAN, HOSTILE, 1.0)
    telemetry.effect(EffectKind.OPEN_PR, "performed")
    telemetry.uncertain(EffectKind.COMMENT)
    telemetry.lease_lost(Phase.PLAN, "agent")
    after = await scrape()
    assert_bounded(after)
    phase = "aw_phase_duration_seconds"
    assert delta(after, before, f"{phase}_count", phase="deliver", outcome="complete") == 1
    assert delta(after, before, f"{phase}_sum", phase="deliver") == 42.0
    assert delta(after, before, f"{phase}_count", phase="plan", outcome="other") == 1
    assert delta(after, before, "aw_round_duration_seconds_count", phase="revise") == 1
    assert delta(after, before, f"{phase}_count", phase="revise") == 0
    assert delta(after, before, "aw_effects_total", kind="open_pr", result="performed") == 1
    assert delta(after, before, "aw_uncertain_outcomes_total", kind="comment") == 1
    assert delta(after, before, "aw_leases_lost_total", phase="plan", stage="agent") == 1


class _NoAuth:
    async def authorization(self, http: GitHubHttp, url: httpx.URL | None = None) -> str:
        return "token test"

    def invalidate(self, url: httpx.URL | None = None, http: GitHubHttp | None = None) -> None:
        return None

    async def push_token(self, http: GitHubHttp, repo: str) -> str:
        return "test"


async def _never_accepted(delivery_id: str, hook_id: str) -> None:
    raise AssertionError("nothing is accepted in these tests")


async def _page() -> str:
    from agent_workflow.telemetry.exposition import render

    return (await render()).decode()


def test_recording__a_metric_that_cannot_be_written_never_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Counting is never why a stored delivery gets a 503 or an effect fails."""
    from agent_workflow.core.effects import EffectKind
    from agent_workflow.telemetry import metrics, recorder

    class Broken:
        def labels(self, **_labels: str) -> Broken:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(metrics, "DELIVERIES", Broken())
    monkeypatch.setattr(metrics, "EFFECTS", Broken())
    recorder.delivery("received")
    recorder.PrometheusTelemetry().effect(EffectKind.COMMENT, "performed")
