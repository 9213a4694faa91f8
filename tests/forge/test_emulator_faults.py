"""Each fault kind does what `faults.py` promises, including whether the mutation was applied."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from github_emulator import EmulatorAdminError, EmulatorServer
from tests.forge.helpers import REPO, TOKEN

COMMENTS = "POST /repos/{owner}/{repo}/issues/{issue_number}/comments"


@pytest.fixture
async def api(emu: EmulatorServer) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=emu.url, headers=headers, timeout=5) as client:
        yield client


@pytest.fixture
async def issue(emu: EmulatorServer) -> int:
    return await emu.admin.create_issue(REPO, "Bug", author="alice")


async def _post_comment(api: httpx.AsyncClient, issue: int, body: str = "hi") -> httpx.Response:
    return await api.post(f"/repos/{REPO}/issues/{issue}/comments", json={"body": body})


async def _bodies(emu: EmulatorServer, issue: int) -> list[str]:
    return [c.body for c in await emu.admin.comments(REPO, issue)]


async def test_drop_after_apply__no_response_but_applied(
    emu: EmulatorServer, api: httpx.AsyncClient, issue: int
) -> None:
    """The request reaches GitHub and is applied; the connection dies before the answer."""
    await emu.admin.add_fault("POST", r"/issues/\d+/comments$", "drop_after_apply")
    with pytest.raises(httpx.RemoteProtocolError):
        await _post_comment(api, issue, "lost answer")
    assert await _bodies(emu, issue) == ["lost answer"]
    counters = await emu.admin.counters()
    assert counters.requests[COMMENTS] == 1
    assert counters.faults == {f"drop_after_apply {COMMENTS}": 1}
    # One shot only: the next request is answered normally.
    assert (await _post_comment(api, issue)).status_code == 201


async def test_error_502_before_apply__nothing_applied(
    emu: EmulatorServer, api: httpx.AsyncClient, issue: int
) -> None:
    await emu.admin.add_fault("POST", "/comments$", "error_502_before_apply")
    response = await _post_comment(api, issue)
    assert response.status_code == 502
    assert response.json()["message"] == "Server Error"
    assert await _bodies(emu, issue) == []


async def test_secondary_rate_limit__retry_after_header_and_not_applied(
    emu: EmulatorServer, api: httpx.AsyncClient, issue: int
) -> None:
    await emu.admin.add_fault("POST", "/comments$", "secondary_rate_limit", retry_after=7)
    response = await _post_comment(api, issue)
    assert response.status_code == 403
    assert response.headers["retry-after"] == "7"
    assert "secondary rate limit" in response.json()["message"]
    assert await _bodies(emu, issue) == []


async def test_secondary_rate_limit__variant_without_retry_after_as_429(
    emu: EmulatorServer, api: httpx.AsyncClient, issue: int
) -> None:
    await emu.admin.add_fault(
        "POST", "/comments$", "secondary_rate_limit", retry_after=None, status=429
    )
    response = await _post_comment(api, issue)
    assert response.status_code == 429
    assert "retry-after" not in response.headers
    assert response.headers["x-ratelimit-remaining"] != "0"
    assert await _bodies(emu, issue) == []


async def test_primary_rate_limit__remaining_zero_and_reset(
    emu: EmulatorServer, api: httpx.AsyncClient, issue: int
) -> None:
    await emu.admin.add_fault("POST", "/comments$", "primary_rate_limit", seconds=30)
    response = await _post_comment(api, issue)
    assert response.status_code == 403
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert 25 <= int(response.headers["x-ratelimit-reset"]) - time.time() <= 32
    assert "rate limit exceeded" in response.json()["message"]
    assert await _bodies(emu, issue) == []


async def test_latency__slow_but_applied(
    emu: EmulatorServer, api: httpx.AsyncClient, issue: int
) -> None:
    await emu.admin.add_fault("POST", "/comments$", "latency", seconds=0.3)
    started = time.monotonic()
    response = await _post_comment(api, issue)
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 201
    assert await _bodies(emu, issue) == ["hi"]


async def test_timeout_with_apply__client_gives_up_after_it_was_applied(
    emu: EmulatorServer, api: httpx.AsyncClient, issue: int
) -> None:
    """apply=True: applied at once, the answer held past the client's timeout."""
    await emu.admin.add_fault("POST", "/comments$", "timeout", seconds=5, apply=True)
    with pytest.raises(httpx.ReadTimeout):
        await api.post(f"/repos/{REPO}/issues/{issue}/comments", json={"body": "late"}, timeout=0.3)
    assert await _bodies(emu, issue) == ["late"]


async def test_timeout_without_apply__client_gives_up_and_nothing_applied(
    emu: EmulatorServer, api: httpx.AsyncClient, issue: int
) -> None:
    await emu.admin.add_fault("POST", "/comments$", "timeout", seconds=5, apply=False)
    with pytest.raises(httpx.ReadTimeout):
        await api.post(f"/repos/{REPO}/issues/{issue}/comments", json={"body": "x"}, timeout=0.3)
    assert await _bodies(emu, issue) == []


async def test_rules__match_method_and_path_and_run_out(
    emu: EmulatorServer, api: httpx.AsyncClient, issue: int
) -> None:
    await emu.admin.add_fault("POST", "/comments$", "error_502_before_apply", times=2)
    listed = await api.get(f"/repos/{REPO}/issues/{issue}/comments")  # GET: not matched
    codes = [(await _post_comment(api, issue)).status_code for _ in range(3)]
    assert listed.status_code == 200
    assert codes == [502, 502, 201]
    assert [rule["fired"] for rule in await emu.admin.faults()] == [2]
    await emu.admin.clear_faults()
    assert await emu.admin.faults() == []


async def test_rules__unlimited_until_cleared_and_ghes_paths_match(
    emu: EmulatorServer, api: httpx.AsyncClient, issue: int
) -> None:
    path = r"^/repos/octo/demo/issues/\d+/comments$"
    await emu.admin.add_fault("*", path, "error_502_before_apply", times=None)
    ghes = await api.post(f"/api/v3/repos/{REPO}/issues/{issue}/comments", json={"body": "x"})
    codes = [(await _post_comment(api, issue)).status_code for _ in range(3)]
    assert ghes.status_code == 502
    assert codes == [502, 502, 502]
    assert (await emu.admin.counters()).faults == {f"error_502_before_apply {COMMENTS}": 4}


async def test_rules__bad_rule_is_refused(emu: EmulatorServer) -> None:
    with pytest.raises(EmulatorAdminError):
        await emu.admin.add_fault("POST", "(", "latency")
    with pytest.raises(EmulatorAdminError):
        await emu.admin.add_fault("POST", "x", "meteor_strike")
