"""Webhooks: GitHub-shaped, signed, recorded, redeliverable with the same delivery id."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx

from github_emulator import EmulatorServer
from tests.forge.helpers import BOT, REPO, SECRET, TOKEN, Receiver


def _valid(secret: str, body: bytes, header: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


async def test_label_by_user__signed_issues_labeled_event(
    hooked: EmulatorServer, receiver: Receiver
) -> None:
    number = await hooked.admin.create_issue(REPO, "Bug", body="It breaks", author="alice")
    acted = await hooked.admin.add_label(REPO, number, "agent", user="alice")

    # The admin call returned after the receiver answered: no waiting needed.
    assert [d.event for d in acted.deliveries] == ["issues"]
    assert acted.deliveries[0].status_code == 202
    got = receiver.received[-1]
    assert got.headers["x-github-event"] == "issues"
    assert got.headers["x-github-delivery"] == acted.deliveries[0].id
    assert got.headers["x-github-hook-id"] == "1"
    assert got.headers["user-agent"].startswith("GitHub-Hookshot/")
    assert got.headers["content-type"] == "application/json"
    assert _valid(SECRET, got.body, got.headers["x-hub-signature-256"])
    assert not _valid("other-secret", got.body, got.headers["x-hub-signature-256"])

    payload = json.loads(got.body)
    assert payload["action"] == "labeled"
    assert payload["label"]["name"] == "agent"
    assert payload["issue"]["number"] == number
    assert payload["issue"]["title"] == "Bug"
    assert payload["issue"]["body"] == "It breaks"
    assert [label["name"] for label in payload["issue"]["labels"]] == ["agent"]
    assert payload["issue"]["user"]["login"] == "alice"
    assert payload["sender"] == {**payload["sender"], "login": "alice", "type": "User"}
    repo = payload["repository"]
    assert (repo["full_name"], repo["name"], repo["owner"]["login"]) == (REPO, "demo", "octo")
    assert repo["default_branch"] == "main"
    assert repo["clone_url"].endswith("octo/demo.git")


async def test_comment_and_merge_by_user__events(
    hooked: EmulatorServer, receiver: Receiver
) -> None:
    number = await hooked.admin.create_issue(REPO, "Bug", author="alice")
    comment = await hooked.admin.comment(REPO, number, "/approve", user="alice")
    pr = await hooked.admin.open_pull(
        REPO, head="agent/issue-1", title="Fix", body=f"Closes #{number}", user="bob"
    )
    merged = await hooked.admin.merge_pull(REPO, pr.id, user="alice")

    payload = json.loads(receiver.received[1].body)
    assert payload["action"] == "created"
    assert payload["comment"] == {**payload["comment"], "id": comment.id, "body": "/approve"}
    assert payload["comment"]["user"]["login"] == "alice"

    assert [(d.event, d.action) for d in merged.deliveries] == [
        ("pull_request", "closed"),
        ("issues", "closed"),
    ]
    closed = json.loads(receiver.received[-2].body)
    assert closed["pull_request"]["merged"] is True
    assert closed["pull_request"]["number"] == pr.id
    assert closed["pull_request"]["head"]["ref"] == "agent/issue-1"
    assert closed["pull_request"]["body"] == f"Closes #{number}"
    assert closed["sender"]["login"] == "alice"


async def test_bot_rest_mutations__send_webhooks_in_background(
    hooked: EmulatorServer, receiver: Receiver
) -> None:
    """GitHub sends webhooks for the bot's own comments and labels; routers must ignore them."""
    number = await hooked.admin.create_issue(REPO, "Bug", author="alice")
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=hooked.url, headers=headers) as api:
        await api.post(f"/repos/{REPO}/issues/{number}/comments", json={"body": "plan"})
        await api.post(f"/repos/{REPO}/issues/{number}/labels", json={"labels": ["agent-planned"]})
    await hooked.admin.wait_webhooks()

    events = [
        (json.loads(r.body)["action"], r.headers["x-github-event"]) for r in receiver.received
    ]
    assert events == [("opened", "issues"), ("created", "issue_comment"), ("labeled", "issues")]
    for received in receiver.received[1:]:
        sender = json.loads(received.body)["sender"]
        assert (sender["login"], sender["type"]) == (BOT, "Bot")


async def test_redelivery__same_id_also_concurrently(
    hooked: EmulatorServer, receiver: Receiver
) -> None:
    number = await hooked.admin.create_issue(REPO, "Bug", author="alice")
    original = (await hooked.admin.comment(REPO, number, "/agent plan", user="alice")).deliveries[0]

    again = await hooked.admin.redeliver(original.id)
    twins = await hooked.admin.redeliver(original.id, concurrent=2)

    assert [d.id for d in again + twins] == [original.id] * 3
    assert all(d.redelivery for d in again + twins)
    bodies = {r.body for r in receiver.received if r.headers["x-github-delivery"] == original.id}
    assert len([e for e in receiver.events() if e[1] == original.id]) == 4
    assert len(bodies) == 1  # byte-identical payloads, so the signature matches too
    recorded = [d for d in await hooked.admin.deliveries() if d.id == original.id]
    assert [d.redelivery for d in recorded] == [False, True, True, True]


async def test_receiver_status_and_failures_are_recorded(
    hooked: EmulatorServer, receiver: Receiver
) -> None:
    receiver.status = 500
    number = await hooked.admin.create_issue(REPO, "Bug", author="alice")
    await hooked.admin.configure_webhooks("http://127.0.0.1:9/unreachable", SECRET)
    unreachable = await hooked.admin.add_label(REPO, number, "agent", user="alice")

    deliveries = await hooked.admin.deliveries()
    assert deliveries[0].status_code == 500
    assert unreachable.deliveries[0].status_code is None
    assert unreachable.deliveries[0].error  # recorded, and the admin call still succeeded
    assert await hooked.admin.labels(REPO, number) == ["agent"]


async def test_signature_modes_for_ingress_tests(
    hooked: EmulatorServer, receiver: Receiver
) -> None:
    payload = {"zen": "Keep it logically awesome.", "hook_id": 1}
    for mode in ("valid", "sha1_only", "invalid", "none"):
        await hooked.admin.send_webhook("ping", payload, signature=mode)
    valid, sha1_only, invalid, unsigned = receiver.received
    assert _valid(SECRET, valid.body, valid.headers["x-hub-signature-256"])
    assert valid.headers["x-hub-signature"].startswith("sha1=")
    assert "x-hub-signature-256" not in sha1_only.headers
    assert sha1_only.headers["x-hub-signature"].startswith("sha1=")
    assert not _valid(SECRET, invalid.body, invalid.headers["x-hub-signature-256"])
    assert not {"x-hub-signature", "x-hub-signature-256"} & unsigned.headers.keys()


async def test_webhooks_are_off_without_a_url(emu: EmulatorServer) -> None:
    number = await emu.admin.create_issue(REPO, "Bug", author="alice")
    acted = await emu.admin.add_label(REPO, number, "agent", user="alice")
    assert acted.deliveries == []
    assert await emu.admin.deliveries() == []
