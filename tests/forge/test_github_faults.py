"""The adapter under GitHub's failures: a mutation is never resent, reads are, limits are waited out."""

from __future__ import annotations

import time

import pytest

from agent_workflow.core.errors import RateLimited, UncertainOutcome
from agent_workflow.forge.github import GitHubForge
from agent_workflow.forge.http import ForgeUnavailable
from agent_workflow.forge.policy import RequestPolicy
from github_emulator import EmulatorServer
from tests.forge.helpers import REPO, TOKEN

COMMENT_POST = ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments")
COMMENTS_GET = ("GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments")
COMMENTS_PATH = r"/issues/\d+/comments$"


@pytest.fixture
async def issue(emu: EmulatorServer) -> int:
    number = await emu.admin.create_issue(REPO, "Bug", author="alice")
    await emu.admin.reset_counters()
    return number


async def _posts(emu: EmulatorServer) -> int:
    return (await emu.admin.counters()).get(*COMMENT_POST)


async def test_drop_after_apply__uncertain_and_exactly_one_comment(
    emu: EmulatorServer, forge: GitHubForge, issue: int
) -> None:
    """GitHub applied the POST and the answer was lost: the adapter must not post again."""
    await emu.admin.add_fault("POST", COMMENTS_PATH, "drop_after_apply")
    with pytest.raises(UncertainOutcome):
        await forge.create_comment(REPO, issue, "plan <!-- agent-workflow:effect=k -->")
    assert [c.body for c in await emu.admin.comments(REPO, issue)] == [
        "plan <!-- agent-workflow:effect=k -->"
    ]
    assert await _posts(emu) == 1
    assert forge.stats.uncertain == 1


async def test_502_on_post__uncertain_nothing_applied_not_resent(
    emu: EmulatorServer, forge: GitHubForge, issue: int
) -> None:
    await emu.admin.add_fault("POST", COMMENTS_PATH, "error_502_before_apply")
    with pytest.raises(UncertainOutcome):
        await forge.create_comment(REPO, issue, "x")
    assert await emu.admin.comments(REPO, issue) == []
    assert await _posts(emu) == 1


async def test_timeout_on_post__uncertain_applied_once(emu: EmulatorServer, issue: int) -> None:
    """The client gives up waiting while GitHub has already applied the request."""
    await emu.admin.add_fault("POST", COMMENTS_PATH, "timeout", seconds=5, apply=True)
    policy = RequestPolicy(timeout=0.3, mutation_interval=0)
    async with GitHubForge.from_token(TOKEN, base_url=emu.url, policy=policy) as forge:
        with pytest.raises(UncertainOutcome):
            await forge.create_comment(REPO, issue, "x")
    assert len(await emu.admin.comments(REPO, issue)) == 1
    assert await _posts(emu) == 1


async def test_other_mutations_are_uncertain_too(
    emu: EmulatorServer, forge: GitHubForge, issue: int
) -> None:
    await emu.admin.add_fault("*", "/labels|/pulls$|/git/refs$", "drop_after_apply", times=4)
    with pytest.raises(UncertainOutcome):
        await forge.add_labels(REPO, issue, ["agent"])
    with pytest.raises(UncertainOutcome):
        await forge.remove_label(REPO, issue, "agent")
    with pytest.raises(UncertainOutcome):
        await forge.open_pull_request(REPO, head="b", base="main", title="t", body="")
    with pytest.raises(UncertainOutcome):
        await forge.create_ref(REPO, "refs/heads/b", "3" * 40)
    # Each was applied once; reconciliation would find the PR and the ref.
    assert await forge.find_pull_request(REPO, "b") is not None
    assert await forge.get_ref_sha(REPO, "refs/heads/b") == "3" * 40


async def test_secondary_rate_limit_with_retry_after__waits_then_one_comment(
    emu: EmulatorServer, forge: GitHubForge, issue: int
) -> None:
    """A rate-limited POST was not applied, so sending it again after the wait is right."""
    await emu.admin.add_fault("POST", COMMENTS_PATH, "secondary_rate_limit", retry_after=1)
    started = time.monotonic()
    comment_id = await forge.create_comment(REPO, issue, "x")
    assert time.monotonic() - started >= 1.0
    assert [c.id for c in await emu.admin.comments(REPO, issue)] == [comment_id]
    assert await _posts(emu) == 2
    assert forge.stats.rate_limit_waits == 1


async def test_secondary_rate_limit_without_retry_after__backs_off(
    emu: EmulatorServer, forge: GitHubForge, issue: int
) -> None:
    await emu.admin.add_fault(
        "POST", COMMENTS_PATH, "secondary_rate_limit", retry_after=None, times=2, status=429
    )
    await forge.create_comment(REPO, issue, "x")
    assert len(await emu.admin.comments(REPO, issue)) == 1
    assert forge.stats.rate_limit_waits == 2
    # secondary_wait=0.1 doubled: 0.1 then 0.2
    assert forge.stats.waited_seconds == pytest.approx(0.3)


async def test_rate_limited_forever__gives_up_with_rate_limited(
    emu: EmulatorServer, forge: GitHubForge, issue: int
) -> None:
    await emu.admin.add_fault(
        "POST", COMMENTS_PATH, "secondary_rate_limit", retry_after=None, times=None
    )
    with pytest.raises(RateLimited, match="still rate limited after 3 wait"):
        await forge.create_comment(REPO, issue, "x")
    assert await emu.admin.comments(REPO, issue) == []
    assert await _posts(emu) == 4  # first try + one per allowed wait


async def test_primary_rate_limit__waits_for_reset(
    emu: EmulatorServer, forge: GitHubForge, issue: int
) -> None:
    await emu.admin.add_fault("POST", COMMENTS_PATH, "primary_rate_limit", seconds=1)
    await forge.create_comment(REPO, issue, "x")
    assert len(await emu.admin.comments(REPO, issue)) == 1
    assert forge.stats.rate_limit_waits == 1
    assert 0 < forge.stats.waited_seconds <= 2.2


async def test_primary_reset_too_far__fails_fast(
    emu: EmulatorServer, forge: GitHubForge, issue: int
) -> None:
    await emu.admin.add_fault("POST", COMMENTS_PATH, "primary_rate_limit", seconds=3600)
    started = time.monotonic()
    with pytest.raises(RateLimited):
        await forge.create_comment(REPO, issue, "x")
    assert time.monotonic() - started < 1


async def test_get_retried_on_502(emu: EmulatorServer, forge: GitHubForge, issue: int) -> None:
    await emu.admin.add_fault("GET", COMMENTS_PATH, "error_502_before_apply", times=2)
    assert await forge.list_comments(REPO, issue) == []
    assert (await emu.admin.counters()).get(*COMMENTS_GET) == 3
    assert forge.stats.retries == 2


async def test_get_retried_after_dropped_connection(
    emu: EmulatorServer, forge: GitHubForge, issue: int
) -> None:
    await emu.admin.add_fault("GET", COMMENTS_PATH, "drop_after_apply")
    assert await forge.list_comments(REPO, issue) == []
    assert forge.stats.retries == 1


async def test_get_gives_up_after_bounded_retries(
    emu: EmulatorServer, forge: GitHubForge, issue: int
) -> None:
    await emu.admin.add_fault("GET", COMMENTS_PATH, "error_502_before_apply", times=None)
    with pytest.raises(ForgeUnavailable):
        await forge.list_comments(REPO, issue)
    assert (await emu.admin.counters()).get(*COMMENTS_GET) == 4  # read_attempts


async def test_unreachable_server__mutation_never_sent_so_not_uncertain() -> None:
    """Connection refused means no byte left: retrying is safe and the outcome is certain."""
    policy = RequestPolicy.fast()
    async with GitHubForge.from_token(TOKEN, base_url="http://127.0.0.1:9", policy=policy) as f:
        with pytest.raises(ForgeUnavailable):
            await f.create_comment(REPO, 1, "x")
    assert f.stats.mutations == policy.read_attempts
    assert f.stats.uncertain == 0
