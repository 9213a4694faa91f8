"""`GitHubForge`'s review and CI methods against the emulator: reads, pagination, refusals, faults."""

from __future__ import annotations

import pytest

from agent_workflow.core.errors import EffectRefused, UncertainOutcome
from agent_workflow.core.ports import CheckRun, ReviewComment
from agent_workflow.forge.github import MAX_ANNOTATIONS, MAX_CHECK_TEXT, GitHubForge
from agent_workflow.forge.http import GitHubApiError
from github_emulator import EmulatorServer
from tests.forge.helpers import BOT, REPO

HEAD = "agent/issue-1"
REPLIES = ("POST", "/repos/{owner}/{repo}/pulls/{pull_number}/comments/{comment_id}/replies")
REVIEW_COMMENTS = ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/comments")
ANNOTATIONS = ("GET", "/repos/{owner}/{repo}/check-runs/{check_run_id}/annotations")


@pytest.fixture
async def pr(emu: EmulatorServer) -> int:
    return (await emu.admin.open_pull(REPO, head=HEAD, title="Fix", user=BOT)).id


async def _thread(emu: EmulatorServer, pr: int) -> int:
    """A review with one line comment by alice; the comment's id."""
    review = await emu.admin.submit_review(
        REPO,
        pr,
        user="alice",
        state="changes_requested",
        body="x",
        comments=[{"path": "src/a.py", "line": 3, "body": "off by one"}],
    )
    return review.comment_ids[0]


async def test_review_comments__of_one_review(
    emu: EmulatorServer, forge: GitHubForge, pr: int
) -> None:
    review = await emu.admin.submit_review(
        REPO,
        pr,
        user="alice",
        state="changes_requested",
        body="x",
        comments=[
            {"path": "a.py", "line": 3, "body": "one"},
            {"path": "b.py", "line": 9, "body": "two"},
        ],
    )
    await emu.admin.review_comment(REPO, pr, "other review", user="bob", path="c.py", line=1)
    found = await forge.review_comments(REPO, pr, review.id)
    assert found == [
        ReviewComment(
            id=review.comment_ids[0],
            body="one",
            author="alice",
            path="a.py",
            line=3,
            diff_hunk=found[0].diff_hunk,
        ),
        ReviewComment(
            id=review.comment_ids[1],
            body="two",
            author="alice",
            path="b.py",
            line=9,
            diff_hunk=found[1].diff_hunk,
        ),
    ]
    assert found[0].diff_hunk.startswith("@@")
    with pytest.raises(GitHubApiError) as unknown:
        await forge.review_comments(REPO, pr, 1)
    assert unknown.value.status == 404


async def test_list_review_comments__every_page_replies_included(
    emu: EmulatorServer, forge: GitHubForge, pr: int
) -> None:
    lines = [{"path": "a.py", "line": i + 1, "body": f"c{i}"} for i in range(120)]
    review = await emu.admin.submit_review(REPO, pr, user="alice", state="COMMENT", comments=lines)
    reply = await emu.admin.reply_to_review_comment(
        REPO, pr, review.comment_ids[0], "answer", user="bob"
    )
    await emu.admin.reset_counters()
    found = await forge.list_review_comments(REPO, pr)
    assert [c.body for c in found] == [f"c{i}" for i in range(120)] + ["answer"]
    assert (found[-1].id, found[-1].in_reply_to_id) == (reply.id, review.comment_ids[0])
    assert found[0].in_reply_to_id is None
    assert (await emu.admin.counters()).get(*REVIEW_COMMENTS) == 2  # two pages of 100


async def test_reply__in_the_thread_and_a_mutation(
    emu: EmulatorServer, forge: GitHubForge, pr: int
) -> None:
    top = await _thread(emu, pr)
    reply_id = await forge.reply_to_review_comment(REPO, pr, top, "Fixed in the next push")
    [reply] = await emu.admin.replies(REPO, pr, top)
    assert (reply.id, reply.body, reply.author) == (reply_id, "Fixed in the next push", BOT)
    assert (forge.stats.mutations, forge.stats.reads) == (1, 0)


async def test_reply__to_a_reply_or_unknown_comment_is_refused(
    emu: EmulatorServer, forge: GitHubForge, pr: int
) -> None:
    top = await _thread(emu, pr)
    reply_id = await forge.reply_to_review_comment(REPO, pr, top, "first")
    with pytest.raises(EffectRefused) as nested:
        await forge.reply_to_review_comment(REPO, pr, reply_id, "second")
    with pytest.raises(EffectRefused) as unknown:
        await forge.reply_to_review_comment(REPO, pr, 77, "third")
    assert (nested.value.status, unknown.value.status) == (422, 404)
    assert [r.body for r in await emu.admin.replies(REPO, pr, top)] == ["first"]
    assert forge.stats.mutations == 3  # a refusal is never resent


async def test_reply__dropped_answer_is_uncertain_and_applied_once(
    emu: EmulatorServer, forge: GitHubForge, pr: int
) -> None:
    """GitHub applied the reply and the connection died before the answer: no resend."""
    top = await _thread(emu, pr)
    await emu.admin.reset_counters()
    await emu.admin.add_fault("POST", r"/pulls/\d+/comments/\d+/replies$", "drop_after_apply")
    with pytest.raises(UncertainOutcome):
        await forge.reply_to_review_comment(REPO, pr, top, "reply <!-- marker -->")
    assert [r.body for r in await emu.admin.replies(REPO, pr, top)] == ["reply <!-- marker -->"]
    assert (await emu.admin.counters()).get(*REPLIES) == 1
    assert forge.stats.uncertain == 1


async def test_reply__502_is_uncertain_and_nothing_applied(
    emu: EmulatorServer, forge: GitHubForge, pr: int
) -> None:
    top = await _thread(emu, pr)
    await emu.admin.add_fault("POST", r"/replies$", "error_502_before_apply")
    with pytest.raises(UncertainOutcome):
        await forge.reply_to_review_comment(REPO, pr, top, "x")
    assert await emu.admin.replies(REPO, pr, top) == []


async def test_edit_comment__ours_edited_anothers_refused(
    emu: EmulatorServer, forge: GitHubForge, pr: int
) -> None:
    ours = await forge.create_comment(REPO, pr, "Round 1: working")
    theirs = (await emu.admin.comment(REPO, pr, "hello", user="alice")).id
    await forge.edit_comment(REPO, ours, "Round 1: done")
    with pytest.raises(EffectRefused) as refused:
        await forge.edit_comment(REPO, theirs, "hijacked")
    with pytest.raises(EffectRefused) as missing:
        await forge.edit_comment(REPO, 12345, "x")
    assert (refused.value.status, missing.value.status) == (403, 404)
    assert [c.body for c in await emu.admin.comments(REPO, pr)] == ["Round 1: done", "hello"]
    assert forge.stats.mutations == 4


async def test_edit_comment__dropped_answer_is_uncertain(
    emu: EmulatorServer, forge: GitHubForge, pr: int
) -> None:
    ours = await forge.create_comment(REPO, pr, "v1")
    await emu.admin.add_fault("PATCH", r"/issues/comments/\d+$", "drop_after_apply")
    with pytest.raises(UncertainOutcome):
        await forge.edit_comment(REPO, ours, "v2")
    assert [c.body for c in await emu.admin.comments(REPO, pr)] == ["v2"]


async def test_check_runs__failing_ones_with_annotations(
    emu: EmulatorServer, forge: GitHubForge, pr: int
) -> None:
    sha = await emu.admin.pull_head_sha(REPO, pr)
    done = await emu.admin.complete_checks(
        REPO,
        sha,
        [
            {
                "name": "test",
                "conclusion": "failure",
                "title": "1 failed",
                "summary": "pytest",
                "text": "E   assert 1 == 2",
                "annotations": [
                    {"path": "src/a.py", "start_line": 3, "message": "boom\n  here"},
                    {"path": "src/b.py", "start_line": 9, "message": "bang"},
                ],
            },
            {
                "name": "lint",
                "conclusion": "success",
                "annotations": [{"path": "x.py", "start_line": 1, "message": "fine"}],
            },
        ],
    )
    await emu.admin.reset_counters()
    runs = await forge.check_runs(REPO, sha)
    assert runs == [
        CheckRun(
            id=done.run_ids[0],
            name="test",
            status="completed",
            conclusion="failure",
            title="1 failed",
            summary="pytest",
            text="E   assert 1 == 2",
            annotations=("src/a.py:3: boom here", "src/b.py:9: bang"),
        ),
        CheckRun(id=done.run_ids[1], name="lint", status="completed", conclusion="success"),
    ]
    # Annotations are read for the failing run only.
    assert (await emu.admin.counters()).get(*ANNOTATIONS) == 1
    assert await forge.check_runs(REPO, "f" * 40) == []


async def test_check_runs__paginated_and_bounded(
    emu: EmulatorServer, forge: GitHubForge, pr: int
) -> None:
    sha = await emu.admin.pull_head_sha(REPO, pr)
    noisy = {
        "name": "lint",
        "conclusion": "timed_out",
        "text": "x" * 10_000 + "the end",
        "summary": "s" * 5000,
        "annotations": [
            {"path": "a.py", "start_line": i + 1, "message": f"m{i}"} for i in range(120)
        ],
    }
    passing = [{"name": f"job-{i}", "conclusion": "success"} for i in range(110)]
    await emu.admin.complete_checks(REPO, sha, [noisy, *passing])
    await emu.admin.reset_counters()

    runs = await forge.check_runs(REPO, sha)

    assert len(runs) == 111  # two pages of check runs
    lint = runs[0]
    assert len(lint.annotations) == MAX_ANNOTATIONS
    assert lint.annotations[0] == "a.py:1: m0"
    assert len(lint.text) == MAX_CHECK_TEXT
    assert lint.text.endswith("the end")  # a log's tail is kept
    assert len(lint.summary) < 5000
    counters = await emu.admin.counters()
    assert counters.get("GET", "/repos/{owner}/{repo}/commits/{ref}/check-runs") == 2
    assert counters.get(*ANNOTATIONS) == 1  # 50 per page: one page is enough
