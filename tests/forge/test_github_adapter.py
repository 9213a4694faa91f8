"""`GitHubForge` against the emulator: each mutation and read, and its request counts."""

from __future__ import annotations

import time

import pytest

from agent_workflow.core.errors import ForgeError
from agent_workflow.core.ports import Forge
from agent_workflow.forge.github import GitHubForge
from agent_workflow.forge.http import GitHubApiError
from agent_workflow.forge.policy import RequestPolicy
from github_emulator import EmulatorServer
from tests.forge.helpers import BOT, REPO, TOKEN

PULLS_POST = ("POST", "/repos/{owner}/{repo}/pulls")
PULLS_GET = ("GET", "/repos/{owner}/{repo}/pulls")
COMMENTS_GET = ("GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments")
PERMISSION_GET = ("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission")


def test_adapter_implements_the_protocol(forge: GitHubForge) -> None:
    assert isinstance(forge, Forge)


async def test_create_comment__returns_the_id_github_assigned(
    emu: EmulatorServer, forge: GitHubForge
) -> None:
    number = await emu.admin.create_issue(REPO, "Bug")
    comment_id = await forge.create_comment(REPO, number, "the plan")
    [stored] = await emu.admin.comments(REPO, number)
    assert (stored.id, stored.body, stored.author) == (comment_id, "the plan", BOT)
    assert (forge.stats.mutations, forge.stats.reads) == (1, 0)


async def test_create_comment__refusal_is_forge_error_with_githubs_message(
    emu: EmulatorServer, forge: GitHubForge
) -> None:
    number = await emu.admin.create_issue(REPO, "Bug")
    with pytest.raises(GitHubApiError) as missing:
        await forge.create_comment(REPO, 999, "x")
    with pytest.raises(GitHubApiError) as too_long:
        await forge.create_comment(REPO, number, "x" * 70000)
    assert missing.value.status == 404
    assert too_long.value.status == 422
    assert "body is too long" in str(too_long.value)
    assert forge.stats.mutations == 2  # a 4xx is never resent


async def test_labels__add_remove_and_absent_label_is_success(
    emu: EmulatorServer, forge: GitHubForge
) -> None:
    number = await emu.admin.create_issue(REPO, "Bug")
    await forge.add_labels(REPO, number, ["agent", "needs/review"])
    await forge.add_labels(REPO, number, ["agent"])
    await forge.add_labels(REPO, number, [])  # nothing to do: no request
    await forge.remove_label(REPO, number, "needs/review")
    await forge.remove_label(REPO, number, "needs/review")  # already gone: success
    assert await emu.admin.labels(REPO, number) == ["agent"]
    assert forge.stats.mutations == 4
    with pytest.raises(ForgeError):
        await forge.remove_label(REPO, 404, "agent")  # a missing issue is not success


async def test_open_pull_request__opens_then_adopts_the_existing_one(
    emu: EmulatorServer, forge: GitHubForge
) -> None:
    kwargs = {"head": "agent/issue-1", "base": "main", "title": "Fix", "body": "Closes #1"}
    first = await forge.open_pull_request(REPO, **kwargs)
    again = await forge.open_pull_request(REPO, **kwargs)
    assert again == first
    assert (first.head, first.state, first.merged) == ("agent/issue-1", "open", False)
    assert first.url.endswith(f"/pull/{first.number}")
    assert len(await emu.admin.pulls(REPO)) == 1
    counters = await emu.admin.counters()
    assert (counters.get(*PULLS_POST), counters.get(*PULLS_GET)) == (2, 1)


async def test_open_pull_request__other_validation_errors_are_raised(
    forge: GitHubForge,
) -> None:
    with pytest.raises(GitHubApiError, match="No commits between"):
        await forge.open_pull_request(REPO, head="main", base="main", title="x", body="")


async def test_find_pull_request__any_state_and_only_that_head(
    emu: EmulatorServer, forge: GitHubForge
) -> None:
    assert await forge.find_pull_request(REPO, "agent/issue-1") is None
    other = await emu.admin.open_pull(REPO, head="someone-else", title="x", user="bob")
    pr = await forge.open_pull_request(
        REPO, head="agent/issue-1", base="main", title="Fix", body=""
    )
    await emu.admin.merge_pull(REPO, pr.number, user="octo")
    found = await forge.find_pull_request(REPO, "agent/issue-1")
    assert found is not None
    assert (found.number, found.state, found.merged) == (pr.number, "closed", True)
    assert found.number != other.id
    assert await forge.find_pull_request(REPO, "octo:agent/issue-1") == found


async def test_list_comments__follows_pagination(emu: EmulatorServer, forge: GitHubForge) -> None:
    number = await emu.admin.create_issue(REPO, "Busy issue")
    state = emu.emulator.state  # seeding in-process: 250 admin calls would be slow
    repo = state.repo("octo", "demo")
    for i in range(250):
        state.add_comment(repo, number, f"comment {i}", "alice" if i % 2 else BOT)
    await emu.admin.reset_counters()

    comments = await forge.list_comments(REPO, number)

    assert [c.body for c in comments] == [f"comment {i}" for i in range(250)]
    assert len({c.id for c in comments}) == 250
    assert comments[1].author == "alice"
    assert comments[0].author == BOT
    assert (await emu.admin.counters()).get(*COMMENTS_GET) == 3  # 100 + 100 + 50
    assert forge.stats.reads == 3


async def test_permission__role_names_and_strangers(
    emu: EmulatorServer, forge: GitHubForge
) -> None:
    await emu.admin.set_permission(REPO, "mia", "maintain")
    await emu.admin.set_permission(REPO, "tom", "triage")
    assert await forge.permission(REPO, "mia") == "maintain"
    assert await forge.permission(REPO, "MIA") == "maintain"  # logins are case-blind
    assert await forge.permission(REPO, "tom") == "triage"
    assert await forge.permission(REPO, "octo") == "admin"
    assert await forge.permission(REPO, "mallory") == "none"
    assert await forge.permission("octo/missing-repo", "mia") == "none"  # 404 fails closed
    # Every call asks GitHub: the one permission cache is the core's `Trust`.
    assert (await emu.admin.counters()).get(*PERMISSION_GET) == 6


async def test_create_ref__idempotent_for_the_same_sha(
    emu: EmulatorServer, forge: GitHubForge
) -> None:
    sha, other = "1" * 40, "2" * 40
    await forge.create_ref(REPO, "refs/heads/agent/issue-3", sha)
    await forge.create_ref(REPO, "refs/heads/agent/issue-3", sha)
    assert await forge.get_ref_sha(REPO, "refs/heads/agent/issue-3") == sha
    assert await forge.get_ref_sha(REPO, "refs/heads/none") is None
    with pytest.raises(ForgeError, match="already exists"):
        await forge.create_ref(REPO, "refs/heads/agent/issue-3", other)


async def test_mutations_are_spaced_per_token(emu: EmulatorServer) -> None:
    number = await emu.admin.create_issue(REPO, "Bug")
    policy = RequestPolicy(timeout=30.0, mutation_interval=0.2)
    async with GitHubForge.from_token(TOKEN, base_url=emu.url, policy=policy) as forge:
        started = time.monotonic()
        for i in range(3):
            await forge.create_comment(REPO, number, f"c{i}")
        elapsed = time.monotonic() - started
        reads_started = time.monotonic()
        for _ in range(3):
            await forge.list_comments(REPO, number)  # reads are not spaced
        reads_elapsed = time.monotonic() - reads_started
    assert elapsed >= 0.4
    assert reads_elapsed < 0.2


async def test_ghes_base_url_with_api_prefix(emu: EmulatorServer) -> None:
    number = await emu.admin.create_issue(REPO, "Bug")
    base = f"{emu.url}/api/v3"
    async with GitHubForge.from_token(TOKEN, base_url=base, policy=RequestPolicy.fast()) as forge:
        await forge.create_comment(REPO, number, "via GHES path")
        state = emu.emulator.state
        for i in range(120):
            state.add_comment(state.repo("octo", "demo"), number, str(i), "alice")
        assert len(await forge.list_comments(REPO, number)) == 121


async def test_wrong_token__is_forge_error(emu: EmulatorServer) -> None:
    async with GitHubForge.from_token("nope", base_url=emu.url, policy=RequestPolicy.fast()) as f:
        with pytest.raises(GitHubApiError) as refused:
            await f.create_comment(REPO, 1, "x")
    assert refused.value.status == 401
    assert "Bad credentials" in str(refused.value)
