"""Which GitHub answers are terminal refusals (`EffectRefused`): issue 10.

A 4xx no resend can change (400, 403 that is not a rate limit, 404, 410, 422) on a
repository's resource is a refusal, sent once; a rate limit is waited out, a refused
credential is not the effect's end, and a 5xx on a mutation stays uncertain.
"""

from __future__ import annotations

import httpx
import pytest

from agent_workflow.core.errors import EffectRefused, UncertainOutcome
from agent_workflow.forge.github import GitHubForge
from agent_workflow.forge.http import GitHubApiError
from github_emulator import EmulatorServer
from tests.forge.helpers import REPO

COMMENTS = r"/issues/\d+/comments$"


def _answer(status: int, path: str = "/repos/o/r/issues/1/comments") -> httpx.Response:
    request = httpx.Request("POST", f"https://api.github.com{path}")
    return httpx.Response(status, json={"message": "no"}, request=request)


@pytest.mark.parametrize("status", [400, 403, 404, 410, 422])
def test_classify__definite_4xx_on_a_repository_is_a_refusal(status: int) -> None:
    error = GitHubApiError.from_response(_answer(status))
    assert isinstance(error, EffectRefused)
    assert error.status == status
    assert error.reason_class


@pytest.mark.parametrize(
    ("status", "path"),
    [(401, "/repos/o/r/issues/1/comments"), (409, "/repos/o/r/git/refs"), (404, "/user")],
)
def test_classify__other_answers_are_not_terminal(status: int, path: str) -> None:
    assert not isinstance(GitHubApiError.from_response(_answer(status, path)), EffectRefused)


@pytest.mark.parametrize("status", [403, 410, 422])
async def test_create_comment__refused_once_is_one_request(
    emu: EmulatorServer, forge: GitHubForge, status: int
) -> None:
    number = await emu.admin.create_issue(REPO, "Bug")
    await emu.admin.add_fault("POST", COMMENTS, "refuse", status=status, times=None)

    with pytest.raises(EffectRefused) as refused:
        await forge.create_comment(REPO, number, "the plan")

    assert refused.value.status == status
    assert not isinstance(refused.value, UncertainOutcome)
    assert forge.stats.mutations == 1
    assert forge.stats.rate_limit_waits == 0
    assert await emu.admin.comments(REPO, number) == []
