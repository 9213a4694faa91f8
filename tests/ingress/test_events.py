"""parse(): every rule, the ignores around it, and the malformed payloads it refuses."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from agent_workflow.core.errors import BadEvent
from agent_workflow.core.model import BRANCH_PREFIX, Event, Intent, TaskInfo
from agent_workflow.ingress.events import Ignored, parse
from tests.ingress.helpers import REPO, TRIGGERS, commented, labeled, pr_closed


def _event(result: Event | Ignored) -> Event:
    assert isinstance(result, Event), result
    return result


def test_parse__label_agent__start_plan_with_issue_facts() -> None:
    event = _event(parse("issues", labeled("agent"), "d-1", TRIGGERS))
    assert event == Event(
        delivery_id="d-1",
        intent=Intent.START_PLAN,
        repo=REPO,
        issue_number=7,
        actor="alice",
        actor_is_bot=False,
        title="Issue 7",
        body="It breaks.",
        clone_url=f"https://github.com/{REPO}.git",
        default_branch="trunk",
        pr_number=None,
    )


def test_parse__label_agent_approved__approve() -> None:
    assert (
        _event(parse("issues", labeled("agent-approved"), "d", TRIGGERS)).intent is Intent.APPROVE
    )


def test_parse__label_case__github_labels_are_case_insensitive() -> None:
    assert _event(parse("issues", labeled("Agent"), "d", TRIGGERS)).intent is Intent.START_PLAN


@pytest.mark.parametrize(
    ("body", "intent"),
    [
        ("/agent plan", Intent.START_PLAN),
        ("/approve", Intent.APPROVE),
        ("/retry", Intent.RETRY),
        ("\n\n   /approve   \r\nThanks, looks good.", Intent.APPROVE),
        ("/agent   plan", Intent.START_PLAN),
        ("\u200b/retry", Intent.RETRY),  # a zero-width space a reader cannot see
        ("<!-- note -->\n/approve", Intent.APPROVE),  # hidden comment: not what a reader sees
    ],
)
def test_parse__comment_command(body: str, intent: Intent) -> None:
    event = _event(parse("issue_comment", commented(body), "d", TRIGGERS))
    assert (event.intent, event.issue_number, event.actor) == (intent, 7, "alice")


@pytest.mark.parametrize(
    "body",
    [
        "Looks good!\n/approve",  # only the first non-empty line counts
        "/approve please",
        "/Approve",
        "please /retry",
        "/agent",
        "",
        "<!-- /approve -->",
    ],
)
def test_parse__comment_not_a_command__ignored(body: str) -> None:
    assert isinstance(parse("issue_comment", commented(body), "d", TRIGGERS), Ignored)


def test_parse__comment_body_null__ignored() -> None:
    payload = commented("/approve")
    payload["comment"]["body"] = None
    assert isinstance(parse("issue_comment", payload, "d", TRIGGERS), Ignored)


def test_parse__comment_on_pull_request__ignored() -> None:
    result = parse("issue_comment", commented("/approve", pr=True), "d", TRIGGERS)
    assert result == Ignored("comment on a pull request")


def test_parse__bot_sender__flagged_not_dropped() -> None:
    """Bots are filtered by the router (it knows our own login); parse only reports them."""
    event = _event(
        parse("issues", labeled("agent", sender="ci[bot]", sender_type="Bot"), "d", TRIGGERS)
    )
    assert event.actor_is_bot
    assert event.actor == "ci[bot]"


def test_parse__issue_body_null__empty_string() -> None:
    payload = labeled("agent")
    payload["issue"]["body"] = None
    assert _event(parse("issues", payload, "d", TRIGGERS)).body == ""


def test_parse__default_branch_missing__main() -> None:
    payload = labeled("agent")
    del payload["repository"]["default_branch"]
    assert _event(parse("issues", payload, "d", TRIGGERS)).default_branch == "main"


def test_parse__merged_agent_branch__merged_with_issue_and_pr() -> None:
    event = _event(parse("pull_request", pr_closed("agent/issue-42", number=57), "d", TRIGGERS))
    assert (event.intent, event.issue_number, event.pr_number) == (Intent.MERGED, 42, 57)
    assert (event.repo, event.actor, event.title, event.body) == (REPO, "alice", "", "")


@pytest.mark.parametrize(
    "ref",
    [
        "feature/faster",
        "agent/issue-",
        "agent/issue-7x",
        "agent/issue-07",  # not the branch we would have created
        "agent/issue-0",
        "xagent/issue-7",
        "agent/issue-99999999999",  # beyond a 32-bit issue number
    ],
)
def test_parse__merged_other_branch__ignored(ref: str) -> None:
    assert isinstance(parse("pull_request", pr_closed(ref), "d", TRIGGERS), Ignored)


def test_parse__closed_without_merge__ignored() -> None:
    assert isinstance(parse("pull_request", pr_closed(merged=False), "d", TRIGGERS), Ignored)


def test_parse__merged_from_a_fork__ignored() -> None:
    result = parse("pull_request", pr_closed(head_repo="mallory/demo"), "d", TRIGGERS)
    assert result == Ignored("head branch is not in this repository")


def test_parse__merged_head_repo_deleted__ignored() -> None:
    payload = pr_closed()
    payload["pull_request"]["head"]["repo"] = None
    assert parse("pull_request", payload, "d", TRIGGERS) == Ignored(
        "head branch is not in this repository"
    )


def test_parse__merged_head_repo_missing__ignored() -> None:
    """`head.repo` is required for a merge to count: without it nothing says the branch is ours."""
    payload = pr_closed()
    del payload["pull_request"]["head"]["repo"]
    assert parse("pull_request", payload, "d", TRIGGERS) == Ignored(
        "head branch is not in this repository"
    )


def test_parse__merged_by_a_merge_queue__an_event_of_a_bot() -> None:
    """The parser keeps a bot's merge (the router decides: a merge counts whoever merged)."""
    payload = {**pr_closed(), "sender": {"login": "github-merge-queue[bot]", "type": "Bot"}}
    event = _event(parse("pull_request", payload, "d", TRIGGERS))
    assert (event.intent, event.actor, event.actor_is_bot) == (
        Intent.MERGED,
        "github-merge-queue[bot]",
        True,
    )


@pytest.mark.parametrize(
    ("event_name", "payload"),
    [
        ("issues", {**labeled("agent"), "action": "opened"}),
        ("issues", labeled("bug")),
        ("issue_comment", {**commented("/approve"), "action": "edited"}),
        ("pull_request", {**pr_closed(), "action": "opened"}),
        ("push", {"ref": "refs/heads/main"}),
        ("issues", {}),
    ],
)
def test_parse__unhandled__ignored_with_reason(event_name: str, payload: dict[str, Any]) -> None:
    result = parse(event_name, payload, "d", TRIGGERS)
    assert isinstance(result, Ignored)
    assert result.reason


def _without(payload: dict[str, Any], *path: str) -> dict[str, Any]:
    node = payload
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return payload


@pytest.mark.parametrize(
    ("event_name", "payload", "field"),
    [
        ("issues", _without(labeled("agent"), "repository", "full_name"), "repository.full_name"),
        ("issues", _without(labeled("agent"), "repository"), "repository"),
        ("issues", _without(labeled("agent"), "issue", "number"), "issue.number"),
        ("issues", _without(labeled("agent"), "issue"), "issue"),
        ("issues", _without(labeled("agent"), "sender"), "sender"),
        ("issues", _without(labeled("agent"), "label"), "label"),
        ("issue_comment", _without(commented("/approve"), "issue", "number"), "issue.number"),
        ("issue_comment", _without(commented("/approve"), "comment"), "comment"),
        ("pull_request", _without(pr_closed(), "pull_request", "number"), "pull_request.number"),
        ("pull_request", _without(pr_closed(), "pull_request", "head"), "pull_request.head"),
        ("pull_request", _without(pr_closed(), "repository"), "repository"),
    ],
)
def test_parse__missing_field__bad_event(
    event_name: str, payload: dict[str, Any], field: str
) -> None:
    with pytest.raises(BadEvent, match=field.replace(".", r"\.")):
        parse(event_name, payload, "d", TRIGGERS)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("issue", "number"), "7"),
        (("issue", "number"), True),
        (("issue", "number"), 0),
        (("issue", "number"), 2**31),
        (("issue", "title"), 5),
        (("repository", "full_name"), "no-slash"),
        (("sender", "login"), ""),
        (("label",), "agent"),
    ],
)
def test_parse__wrong_type__bad_event(path: tuple[str, ...], value: Any) -> None:
    payload = labeled("agent")
    node = payload
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(BadEvent):
        parse("issues", payload, "d", TRIGGERS)


def test_parse__custom_triggers() -> None:
    triggers = dataclasses.replace(
        TRIGGERS, plan_label="ai", approve_command="/ship", retry_command="/again"
    )
    assert _event(parse("issues", labeled("ai"), "d", triggers)).intent is Intent.START_PLAN
    assert isinstance(parse("issues", labeled("agent"), "d", triggers), Ignored)
    assert _event(parse("issue_comment", commented("/ship"), "d", triggers)).intent is (
        Intent.APPROVE
    )
    assert isinstance(parse("issue_comment", commented("/approve"), "d", triggers), Ignored)
    assert _event(parse("issue_comment", commented("/again"), "d", triggers)).intent is (
        Intent.RETRY
    )


def test_parse__merged_branch_is_the_cores_task_branch() -> None:
    """One branch prefix: the one `TaskInfo.branch` pushes is the one a merge is matched by."""
    branch = TaskInfo(repo=REPO, issue_number=3).branch
    assert branch == f"{BRANCH_PREFIX}3"
    assert _event(parse("pull_request", pr_closed(branch), "d", TRIGGERS)).issue_number == 3


def test_parse__deterministic_and_pure() -> None:
    payload = commented("/approve")
    snapshot = repr(payload)
    assert parse("issue_comment", payload, "d", TRIGGERS) == parse(
        "issue_comment", payload, "d", TRIGGERS
    )
    assert repr(payload) == snapshot
