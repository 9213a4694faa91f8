"""Review rounds and CI in the emulator: review and check REST routes, their webhooks, admin."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from github_emulator import EmulatorAdminError, EmulatorServer
from tests.forge.helpers import BOT, REPO, TOKEN, Receiver

HEAD = "agent/issue-1"
REPLIES = "POST /repos/{owner}/{repo}/pulls/{pull_number}/comments/{comment_id}/replies"


@pytest.fixture
async def api(emu: EmulatorServer) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=emu.url, headers=headers, timeout=5) as client:
        yield client


@pytest.fixture
async def pr(emu: EmulatorServer) -> int:
    """An open PR from `agent/issue-1`, opened by the bot."""
    return (await emu.admin.open_pull(REPO, head=HEAD, title="Fix", user=BOT)).id


def _payloads(receiver: Receiver) -> list[tuple[str, dict[str, Any]]]:
    return [(r.headers["x-github-event"], json.loads(r.body)) for r in receiver.received]


# -- reviews: REST --------------------------------------------------------------------------


async def test_review_comments__listed_per_review_and_per_pr(
    emu: EmulatorServer, api: httpx.AsyncClient, pr: int
) -> None:
    first = await emu.admin.submit_review(
        REPO,
        pr,
        user="alice",
        state="changes_requested",
        body="Please fix",
        comments=[
            {"path": "src/a.py", "line": 3, "body": "off by one"},
            {"path": "src/b.py", "line": 10, "body": "typo"},
        ],
    )
    second = await emu.admin.submit_review(
        REPO, pr, user="bob", state="commented", comments=[{"path": "c.py", "line": 1, "body": "?"}]
    )
    of_first = await api.get(f"/repos/{REPO}/pulls/{pr}/reviews/{first.id}/comments")
    every = await api.get(f"/repos/{REPO}/pulls/{pr}/comments")
    reviews = await api.get(f"/repos/{REPO}/pulls/{pr}/reviews")
    unknown = await api.get(f"/repos/{REPO}/pulls/{pr}/reviews/123/comments")

    assert of_first.status_code == 200
    assert [c["id"] for c in of_first.json()] == first.comment_ids
    comment = of_first.json()[0]
    assert comment == {
        **comment,
        "body": "off by one",
        "path": "src/a.py",
        "line": 3,
        "pull_request_review_id": first.id,
        "commit_id": await emu.admin.pull_head_sha(REPO, pr),
    }
    assert comment["user"]["login"] == "alice"
    assert comment["pull_request_url"].endswith(f"/repos/{REPO}/pulls/{pr}")
    assert "in_reply_to_id" not in comment
    assert [c["id"] for c in every.json()] == [*first.comment_ids, *second.comment_ids]
    assert [r["state"] for r in reviews.json()] == ["CHANGES_REQUESTED", "COMMENTED"]
    assert unknown.status_code == 404


async def test_review_comments__paginate_with_link_header(
    emu: EmulatorServer, api: httpx.AsyncClient, pr: int
) -> None:
    lines = [{"path": "a.py", "line": i + 1, "body": f"c{i}"} for i in range(35)]
    review = await emu.admin.submit_review(REPO, pr, user="alice", state="COMMENT", comments=lines)
    first = await api.get(f"/repos/{REPO}/pulls/{pr}/comments")
    second = await api.get(first.links["next"]["url"])
    per_review = await api.get(
        f"/repos/{REPO}/pulls/{pr}/reviews/{review.id}/comments", params={"per_page": 20}
    )
    assert len(first.json()) == 30
    assert [c["body"] for c in second.json()] == [f"c{i}" for i in range(30, 35)]
    assert set(second.links) == {"prev", "first"}
    assert len(per_review.json()) == 20
    assert "next" in per_review.links


async def test_reply__201_in_the_thread_and_a_reply_to_a_reply_is_422(
    emu: EmulatorServer, api: httpx.AsyncClient, pr: int
) -> None:
    review = await emu.admin.submit_review(
        REPO,
        pr,
        user="alice",
        state="changes_requested",
        body="x",
        comments=[{"path": "a.py", "line": 3, "body": "why?"}],
    )
    [top] = review.comment_ids
    path = f"/repos/{REPO}/pulls/{pr}/comments/{top}/replies"
    reply = await api.post(path, json={"body": "Fixed in abc123"})
    nested = await api.post(
        f"/repos/{REPO}/pulls/{pr}/comments/{reply.json()['id']}/replies", json={"body": "x"}
    )
    empty = await api.post(path, json={"body": ""})
    unknown = await api.post(f"/repos/{REPO}/pulls/{pr}/comments/42/replies", json={"body": "x"})
    other_pr = await api.post(f"/repos/{REPO}/pulls/999/comments/{top}/replies", json={"body": "x"})

    assert reply.status_code == 201
    data = reply.json()
    assert reply.headers["location"] == data["url"]
    assert data == {**data, "in_reply_to_id": top, "path": "a.py", "line": 3}
    assert data["user"]["login"] == BOT
    assert data["pull_request_review_id"] != review.id  # GitHub files a reply in a new review
    assert nested.status_code == 422
    assert nested.json()["message"] == "Validation Failed"
    assert empty.status_code == 422
    assert (unknown.status_code, other_pr.status_code) == (404, 404)
    replies = await emu.admin.replies(REPO, pr, top)
    assert [(r.body, r.author) for r in replies] == [("Fixed in abc123", BOT)]


async def test_review__admin_refusals(emu: EmulatorServer, pr: int) -> None:
    with pytest.raises(EmulatorAdminError) as own:
        await emu.admin.submit_review(REPO, pr, user=BOT, state="approved")
    with pytest.raises(EmulatorAdminError) as no_body:
        await emu.admin.submit_review(REPO, pr, user="alice", state="changes_requested")
    with pytest.raises(EmulatorAdminError) as bad_line:
        await emu.admin.review_comment(REPO, pr, "x", user="alice", path="a.py", line=0)
    assert own.value.status == 422
    assert "your own pull request" in str(own.value.body)
    assert no_body.value.status == 422
    assert bad_line.value.status == 422
    assert await emu.admin.reviews(REPO, pr) == []


# -- issue comment edits ---------------------------------------------------------------------


async def test_edit_comment__author_may_others_may_not(
    emu: EmulatorServer, api: httpx.AsyncClient, pr: int
) -> None:
    mine = await api.post(f"/repos/{REPO}/issues/{pr}/comments", json={"body": "round 1"})
    theirs = await emu.admin.comment(REPO, pr, "a human's words", user="alice")

    edited = await api.patch(
        f"/repos/{REPO}/issues/comments/{mine.json()['id']}", json={"body": "2"}
    )
    refused = await api.patch(f"/repos/{REPO}/issues/comments/{theirs.id}", json={"body": "no"})
    missing = await api.patch(f"/repos/{REPO}/issues/comments/1", json={"body": "x"})
    empty = await api.patch(f"/repos/{REPO}/issues/comments/{mine.json()['id']}", json={})

    assert edited.status_code == 200
    assert edited.json() == {**edited.json(), "id": mine.json()["id"], "body": "2"}
    assert refused.status_code == 403
    assert missing.status_code == 404
    assert empty.status_code == 422
    assert [c.body for c in await emu.admin.comments(REPO, pr)] == ["2", "a human's words"]


async def test_edit_comment__a_maintainer_may_edit_anyones(
    emu: EmulatorServer, api: httpx.AsyncClient, pr: int
) -> None:
    theirs = await emu.admin.comment(REPO, pr, "typo", user="alice")
    await emu.admin.set_permission(REPO, BOT, "write")
    edited = await api.patch(f"/repos/{REPO}/issues/comments/{theirs.id}", json={"body": "fixed"})
    assert edited.status_code == 200
    assert edited.json()["user"]["login"] == "alice"


# -- checks: REST ----------------------------------------------------------------------------


async def test_check_runs__by_sha_and_branch_with_annotations(
    emu: EmulatorServer, api: httpx.AsyncClient, pr: int
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
                "text": "FAILED tests/test_a.py::test_x",
                "annotations": [{"path": "src/a.py", "start_line": 3, "message": "boom"}],
            },
            {"name": "lint", "conclusion": "success"},
        ],
    )
    by_sha = await api.get(f"/repos/{REPO}/commits/{sha}/check-runs")
    by_branch = await api.get(f"/repos/{REPO}/commits/{HEAD}/check-runs")
    failed_only = await api.get(
        f"/repos/{REPO}/commits/{sha}/check-runs", params={"check_name": "test"}
    )
    annotations = await api.get(f"/repos/{REPO}/check-runs/{done.run_ids[0]}/annotations")
    unknown_ref = await api.get(f"/repos/{REPO}/commits/nope/check-runs")
    unknown_run = await api.get(f"/repos/{REPO}/check-runs/1/annotations")

    assert done.conclusion == "failure"
    assert by_sha.status_code == 200
    assert by_sha.json()["total_count"] == 2
    run = by_sha.json()["check_runs"][0]
    assert run == {
        **run,
        "id": done.run_ids[0],
        "name": "test",
        "head_sha": sha,
        "status": "completed",
        "conclusion": "failure",
        "check_suite": {"id": done.id},
    }
    assert run["output"] == {
        **run["output"],
        "title": "1 failed",
        "summary": "pytest",
        "text": "FAILED tests/test_a.py::test_x",
        "annotations_count": 1,
    }
    assert [p["number"] for p in run["pull_requests"]] == [pr]
    assert by_branch.json() == by_sha.json()
    assert [r["name"] for r in failed_only.json()["check_runs"]] == ["test"]
    [note] = annotations.json()
    assert note == {**note, "path": "src/a.py", "start_line": 3, "end_line": 3, "message": "boom"}
    assert note["annotation_level"] == "failure"
    assert (unknown_ref.status_code, unknown_run.status_code) == (422, 404)


async def test_check_runs__latest_per_name_by_default_and_paginated(
    emu: EmulatorServer, api: httpx.AsyncClient, pr: int
) -> None:
    sha = await emu.admin.pull_head_sha(REPO, pr)
    await emu.admin.complete_checks(REPO, sha, [{"name": "test", "conclusion": "failure"}])
    rerun = await emu.admin.complete_checks(REPO, sha, [{"name": "test", "conclusion": "success"}])
    many = [{"name": f"job-{i}", "conclusion": "success"} for i in range(40)]
    await emu.admin.complete_checks(REPO, sha, many)

    latest = await api.get(f"/repos/{REPO}/commits/{sha}/check-runs", params={"per_page": 100})
    every = await api.get(
        f"/repos/{REPO}/commits/{sha}/check-runs", params={"filter": "all", "per_page": 100}
    )
    first = await api.get(f"/repos/{REPO}/commits/{sha}/check-runs")
    last = await api.get(first.links["next"]["url"])

    tests = [r for r in latest.json()["check_runs"] if r["name"] == "test"]
    assert [r["id"] for r in tests] == rerun.run_ids
    assert latest.json()["total_count"] == 41
    assert every.json()["total_count"] == 42
    assert (len(first.json()["check_runs"]), first.json()["total_count"]) == (30, 41)
    assert len(last.json()["check_runs"]) == 11
    assert len(await emu.admin.check_runs(REPO, sha)) == 42


async def test_checks__admin_refusals(emu: EmulatorServer, pr: int) -> None:
    sha = await emu.admin.pull_head_sha(REPO, pr)
    with pytest.raises(EmulatorAdminError) as bad_conclusion:
        await emu.admin.complete_checks(REPO, sha, [{"name": "t", "conclusion": "meh"}])
    with pytest.raises(EmulatorAdminError) as bad_sha:
        await emu.admin.complete_checks(REPO, "abc", [{"name": "t", "conclusion": "success"}])
    assert (bad_conclusion.value.status, bad_sha.value.status) == (422, 422)
    assert await emu.admin.check_runs(REPO, sha) == []


async def test_new_routes__counted_and_faultable(
    emu: EmulatorServer, api: httpx.AsyncClient, pr: int
) -> None:
    review = await emu.admin.submit_review(
        REPO, pr, user="alice", state="commented", comments=[{"path": "a", "line": 1, "body": "?"}]
    )
    await emu.admin.add_fault("POST", r"/comments/\d+/replies$", "error_502_before_apply")
    path = f"/repos/{REPO}/pulls/{pr}/comments/{review.comment_ids[0]}/replies"
    failed = await api.post(path, json={"body": "x"})
    passed = await api.post(path, json={"body": "x"})
    assert (failed.status_code, passed.status_code) == (502, 201)
    counters = await emu.admin.counters()
    assert counters.get("POST", REPLIES.split(" ", 1)[1]) == 2
    assert counters.faults == {f"error_502_before_apply {REPLIES}": 1}
    assert len(await emu.admin.replies(REPO, pr, review.comment_ids[0])) == 1


async def test_push__moves_the_head_of_open_prs(emu: EmulatorServer, pr: int) -> None:
    before = await emu.admin.pull_head_sha(REPO, pr)
    pushed = await emu.admin.push(REPO, HEAD, user=BOT)
    assert pushed.sha != before
    assert await emu.admin.pull_head_sha(REPO, pr) == pushed.sha
    chosen = "a" * 40
    await emu.admin.push(REPO, HEAD, user=BOT, sha=chosen)
    assert await emu.admin.pull_head_sha(REPO, pr) == chosen


# -- webhooks ----------------------------------------------------------------------------------


async def test_review_webhooks__submitted_then_one_per_comment(
    hooked: EmulatorServer, receiver: Receiver
) -> None:
    pr = (await hooked.admin.open_pull(REPO, head=HEAD, title="Fix", user=BOT)).id
    sha = await hooked.admin.pull_head_sha(REPO, pr)
    review = await hooked.admin.submit_review(
        REPO,
        pr,
        user="alice",
        state="REQUEST_CHANGES",
        body="Needs work",
        comments=[
            {"path": "a.py", "line": 3, "body": "one"},
            {"path": "b.py", "line": 4, "body": "two"},
        ],
    )
    assert [(d.event, d.action, d.status_code) for d in review.deliveries] == [
        ("pull_request_review", "submitted", 202),
        ("pull_request_review_comment", "created", 202),
        ("pull_request_review_comment", "created", 202),
    ]
    [(_, submitted), (_, one), (_, two)] = _payloads(receiver)[-3:]
    assert submitted["review"] == {
        **submitted["review"],
        "id": review.id,
        "state": "changes_requested",
        "body": "Needs work",
        "commit_id": sha,
    }
    assert submitted["review"]["user"]["login"] == "alice"
    assert submitted["sender"]["login"] == "alice"
    pull = submitted["pull_request"]
    assert (pull["number"], pull["head"]["ref"], pull["head"]["sha"]) == (pr, HEAD, sha)
    assert pull["head"]["repo"]["full_name"] == REPO
    assert pull["base"]["ref"] == "main"
    assert submitted["repository"]["full_name"] == REPO
    assert [p["comment"]["id"] for p in (one, two)] == review.comment_ids
    assert one["comment"] == {
        **one["comment"],
        "body": "one",
        "path": "a.py",
        "line": 3,
        "pull_request_review_id": review.id,
    }
    assert one["pull_request"]["number"] == pr


async def test_reply_and_pr_comment_webhooks(hooked: EmulatorServer, receiver: Receiver) -> None:
    pr = (await hooked.admin.open_pull(REPO, head=HEAD, title="Fix", user=BOT)).id
    line = await hooked.admin.review_comment(REPO, pr, "why?", user="alice", path="a.py", line=7)
    reply = await hooked.admin.reply_to_review_comment(REPO, pr, line.id, "because", user="bob")
    comment = await hooked.admin.comment(REPO, pr, "/retry", user="alice")

    assert [(d.event, d.action) for d in line.deliveries] == [
        ("pull_request_review", "submitted"),
        ("pull_request_review_comment", "created"),
    ]
    assert [(d.event, d.action) for d in reply.deliveries] == [
        ("pull_request_review", "submitted"),
        ("pull_request_review_comment", "created"),
    ]
    payloads = _payloads(receiver)
    assert [payloads[i][1]["review"]["state"] for i in (-5, -3)] == ["commented", "commented"]
    replied = payloads[-2][1]["comment"]
    assert replied == {**replied, "id": reply.id, "in_reply_to_id": line.id, "body": "because"}
    event, on_pr = payloads[-1]
    assert event == "issue_comment"
    assert on_pr["comment"]["id"] == comment.id
    assert on_pr["issue"]["number"] == pr
    assert on_pr["issue"]["pull_request"]["url"].endswith(f"/pulls/{pr}")


async def test_bot_reply_and_edit__send_webhooks_in_background(
    hooked: EmulatorServer, receiver: Receiver
) -> None:
    pr = (await hooked.admin.open_pull(REPO, head=HEAD, title="Fix", user=BOT)).id
    line = await hooked.admin.review_comment(REPO, pr, "why?", user="alice", path="a.py", line=7)
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=hooked.url, headers=headers) as api:
        await api.post(f"/repos/{REPO}/pulls/{pr}/comments/{line.id}/replies", json={"body": "ok"})
        created = await api.post(f"/repos/{REPO}/issues/{pr}/comments", json={"body": "v1"})
        await api.patch(
            f"/repos/{REPO}/issues/comments/{created.json()['id']}", json={"body": "v2"}
        )
    await hooked.admin.wait_webhooks()

    tail = [(event, p["action"], p["sender"]["login"]) for event, p in _payloads(receiver)[-4:]]
    assert tail == [
        ("pull_request_review", "submitted", BOT),
        ("pull_request_review_comment", "created", BOT),
        ("issue_comment", "created", BOT),
        ("issue_comment", "edited", BOT),
    ]
    edited = _payloads(receiver)[-1][1]
    assert edited["changes"] == {"body": {"from": "v1"}}
    assert edited["comment"]["body"] == "v2"


async def test_check_webhooks__one_per_run_then_the_suite(
    hooked: EmulatorServer, receiver: Receiver
) -> None:
    pr = (await hooked.admin.open_pull(REPO, head=HEAD, title="Fix", user=BOT)).id
    sha = await hooked.admin.pull_head_sha(REPO, pr)
    done = await hooked.admin.complete_checks(
        REPO,
        sha,
        [
            {"name": "lint", "conclusion": "success"},
            {"name": "test", "conclusion": "timed_out", "summary": "killed"},
        ],
    )
    assert [(d.event, d.action) for d in done.deliveries] == [
        ("check_run", "completed"),
        ("check_run", "completed"),
        ("check_suite", "completed"),
    ]
    [(_, lint), (_, test), (_, suite)] = _payloads(receiver)[-3:]
    run = test["check_run"]
    assert run == {**run, "name": "test", "head_sha": sha, "conclusion": "timed_out"}
    assert run["status"] == "completed"
    assert run["check_suite"] == {
        **run["check_suite"],
        "id": done.id,
        "head_branch": HEAD,
        "head_sha": sha,
    }
    assert [p["number"] for p in run["pull_requests"]] == [pr]
    assert run["pull_requests"][0]["head"] == {**run["pull_requests"][0]["head"], "ref": HEAD}
    assert lint["check_run"]["conclusion"] == "success"
    assert suite["check_suite"] == {
        **suite["check_suite"],
        "id": done.id,
        "status": "completed",
        "conclusion": "timed_out",
        "head_branch": HEAD,
        "head_sha": sha,
    }
    assert [p["number"] for p in suite["check_suite"]["pull_requests"]] == [pr]
    assert suite["sender"] == {**suite["sender"], "login": "github-actions[bot]", "type": "Bot"}
