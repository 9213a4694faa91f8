"""`MemoryForge`'s review and CI methods: what they answer, what they log, their faults."""

from __future__ import annotations

import pytest

from agent_workflow.core.errors import EffectRefused, ForgeError, UncertainOutcome
from agent_workflow.core.ports import CheckRun, Forge
from agent_workflow.testing import MemoryForge

REPO = "octo/demo"


def test_twin_implements_the_protocol() -> None:
    assert isinstance(MemoryForge(), Forge)


async def test_reviews__read_by_review_and_by_pr() -> None:
    forge = MemoryForge()
    review, [one, two] = forge.review_as("alice", REPO, 7, [("a.py", 3, "one"), ("b.py", 4, "two")])
    other, [three] = forge.review_as("bob", REPO, 7, [("c.py", 1, "three")])
    reply = forge.reply_as("carol", REPO, 7, one, "agreed")

    of_review = await forge.review_comments(REPO, 7, review)
    every = await forge.list_review_comments(REPO, 7)

    assert [(c.id, c.body, c.author, c.path, c.line) for c in of_review] == [
        (one, "one", "alice", "a.py", 3),
        (two, "two", "alice", "b.py", 4),
    ]
    assert [c.id for c in every] == [one, two, three, reply]
    assert every[-1].in_reply_to_id == one
    assert [c.id for c in await forge.review_comments(REPO, 7, other)] == [three]
    with pytest.raises(EffectRefused):
        await forge.review_comments(REPO, 7, 1)
    assert forge.reads == 4
    assert forge.log == []  # setup and reads are not mutations


async def test_reply__logged_and_refused_like_github() -> None:
    forge = MemoryForge()
    _, [top] = forge.review_as("alice", REPO, 7, [("a.py", 3, "why?")])
    reply = await forge.reply_to_review_comment(REPO, 7, top, "because")
    with pytest.raises(EffectRefused) as nested:
        await forge.reply_to_review_comment(REPO, 7, reply, "again")
    with pytest.raises(EffectRefused) as unknown:
        await forge.reply_to_review_comment(REPO, 7, 5, "x")
    assert (nested.value.status, unknown.value.status) == (422, 404)
    [stored] = [c for c in await forge.list_review_comments(REPO, 7) if c.id == reply]
    assert (stored.author, stored.in_reply_to_id, stored.path) == (forge.login, top, "a.py")
    assert forge.log == [f"reply_to_review_comment:{top}"]


async def test_reply__faults_drop_applies_fail_and_refuse_do_not() -> None:
    forge = MemoryForge()
    _, [top] = forge.review_as("alice", REPO, 7, [("a.py", 3, "why?")])
    forge.inject("reply_to_review_comment", "drop")
    forge.inject("reply_to_review_comment", "fail")
    forge.inject("reply_to_review_comment", "refuse:403")
    with pytest.raises(UncertainOutcome):
        await forge.reply_to_review_comment(REPO, 7, top, "dropped")
    with pytest.raises(UncertainOutcome):
        await forge.reply_to_review_comment(REPO, 7, top, "failed")
    with pytest.raises(EffectRefused) as refused:
        await forge.reply_to_review_comment(REPO, 7, top, "refused")
    assert refused.value.status == 403
    bodies = [c.body for c in await forge.list_review_comments(REPO, 7)]
    assert bodies == ["why?", "dropped"]
    assert forge.log == [f"reply_to_review_comment:{top}"]


async def test_edit_comment__ours_only_logged_and_faulted() -> None:
    forge = MemoryForge()
    ours = await forge.create_comment(REPO, 7, "v1")
    theirs = forge.post_as("alice", REPO, 7, "hello")
    await forge.edit_comment(REPO, ours, "v2")
    with pytest.raises(EffectRefused) as refused:
        await forge.edit_comment(REPO, theirs, "hijacked")
    with pytest.raises(EffectRefused) as missing:
        await forge.edit_comment(REPO, 1, "x")
    forge.inject("edit_comment", "drop")
    with pytest.raises(UncertainOutcome):
        await forge.edit_comment(REPO, ours, "v3")
    assert (refused.value.status, missing.value.status) == (403, 404)
    assert [c.body for c in await forge.list_comments(REPO, 7)] == ["v3", "hello"]
    assert forge.log == [f"create_comment:{ours}", f"edit_comment:{ours}", f"edit_comment:{ours}"]


async def test_check_runs__as_set_and_a_failing_read() -> None:
    forge = MemoryForge()
    failing = CheckRun(1, "test", "completed", "failure", annotations=("a.py:3: boom",))
    forge.set_check_runs(REPO, "abc", [failing])
    assert await forge.check_runs(REPO, "abc") == [failing]
    assert await forge.check_runs(REPO, "other") == []
    forge.inject("check_runs", "fail")
    with pytest.raises(ForgeError):
        await forge.check_runs(REPO, "abc")
    assert forge.calls["check_runs"] == 3
