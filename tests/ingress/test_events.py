"""parse(): every rule, the ignores around it, and the malformed payloads it refuses."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from agent_workflow.core.errors import BadEvent
from agent_workflow.core.model import BRANCH_PREFIX, Event, Intent, RoundTrigger, TaskInfo
from agent_workflow.ingress.events import MAX_INSTRUCTION, Ignored, parse
from tests.ingress.helpers import (
    EXAMPLE_REPO,
    REPO,
    TRIGGERS,
    checks_completed,
    commented,
    labeled,
    pr_closed,
    pr_conversation,
    review_commented,
    review_submitted,
)


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


def test_parse__repository_id__is_kept_beside_the_name() -> None:
    """Tasks are keyed by it: a renamed repository keeps its id, not its name."""
    payload = labeled("agent")
    payload["repository"]["id"] = 42
    assert _event(parse("issues", payload, "d", TRIGGERS)).repo_id == 42
    payload["repository"]["id"] = "42"
    with pytest.raises(BadEvent, match=r"repository\.id"):
        parse("issues", payload, "d", TRIGGERS)


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


@pytest.mark.parametrize("command", ["/approve", "/retry", "/agent plan", "/agent  plan"])
def test_parse__issue_command_on_pull_request__ignored(command: str) -> None:
    """A PR's number is not a task's issue: issue commands there start nothing (and
    `/agent plan`, though it begins with the revise command, is no revise instruction)."""
    result = parse("issue_comment", commented(command, pr=True), "d", TRIGGERS)
    assert result == Ignored(
        f"{' '.join(command.split())!r} is an issue command, not one for a pull request"
    )


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


# -- rounds after the pull request (real payloads: tests/ingress/fixtures) ---------------

EXAMPLE_SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"  # the examples' head commit


def test_parse__review_changes_requested__revise_round_keyed_by_the_review() -> None:
    payload = review_submitted(body="Rename the helper.\n<!-- hidden -->\u200bAnd test it.")
    payload["sender"] = {"login": "someone-else", "type": "User"}
    event = _event(parse("pull_request_review", payload, "d-1", TRIGGERS))
    assert event == Event(
        delivery_id="d-1",
        intent=Intent.REVISE,
        repo=EXAMPLE_REPO,
        issue_number=7,
        actor="Codertocat",  # the reviewer, not the sender
        actor_is_bot=False,
        clone_url=f"https://github.com/{EXAMPLE_REPO}.git",
        default_branch="master",
        pr_number=2,
        round=RoundTrigger(
            key="review:237895671",
            review_id=237895671,
            instruction="Rename the helper.\nAnd test it.",
        ),
        repo_id=186853002,  # `repository.id`: it survives a rename
    )


@pytest.mark.parametrize("state", ["CHANGES_REQUESTED", "Changes_Requested"])
def test_parse__review_state_any_case__revise(state: str) -> None:
    event = _event(parse("pull_request_review", review_submitted(state), "d", TRIGGERS))
    assert event.intent is Intent.REVISE


def test_parse__review_body_null__revise_without_instruction() -> None:
    event = _event(parse("pull_request_review", review_submitted(body=None), "d", TRIGGERS))
    assert event.round == RoundTrigger(key="review:237895671", review_id=237895671)


def test_parse__review_body_long__instruction_capped() -> None:
    body = "x" * (MAX_INSTRUCTION + 500)
    event = _event(parse("pull_request_review", review_submitted(body=body), "d", TRIGGERS))
    assert event.round is not None
    assert event.round.instruction == "x" * MAX_INSTRUCTION


def test_parse__review_by_a_bot__flagged_for_the_router() -> None:
    payload = review_submitted()
    payload["review"]["user"] = {"login": "reviewer[bot]", "type": "Bot"}
    event = _event(parse("pull_request_review", payload, "d", TRIGGERS))
    assert (event.actor, event.actor_is_bot) == ("reviewer[bot]", True)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (review_submitted("approved"), "review state 'approved' asks for no changes"),
        (review_submitted("commented"), "review state 'commented' asks for no changes"),
        (review_submitted(ref="feature/x"), "branch 'feature/x' is not an agent branch"),
        (review_submitted(ref="agent/issue-07"), "branch 'agent/issue-07' is not an agent branch"),
    ],
)
def test_parse__review_not_a_revise__ignored(payload: dict[str, Any], reason: str) -> None:
    assert parse("pull_request_review", payload, "d", TRIGGERS) == Ignored(reason)


@pytest.mark.parametrize("head_repo", [None, {"full_name": "mallory/Hello-World"}, "absent"])
def test_parse__review_on_a_fork_branch__ignored(head_repo: Any) -> None:
    payload = review_submitted()
    if head_repo == "absent":
        del payload["pull_request"]["head"]["repo"]
    else:
        payload["pull_request"]["head"]["repo"] = head_repo
    assert parse("pull_request_review", payload, "d", TRIGGERS) == Ignored(
        "head branch is not in this repository"
    )


@pytest.mark.parametrize("action", ["edited", "dismissed"])
def test_parse__review_other_actions__ignored(action: str) -> None:
    payload = {**review_submitted(), "action": action}
    assert parse("pull_request_review", payload, "d", TRIGGERS) == Ignored(
        f"pull_request_review.{action} is not handled"
    )


def test_parse__review_comment_command__revise_keyed_by_the_comment() -> None:
    payload = review_commented("  /agent   rename   the helper \nand its test\n")
    event = _event(parse("pull_request_review_comment", payload, "d", TRIGGERS))
    assert (event.intent, event.issue_number, event.pr_number, event.actor) == (
        Intent.REVISE,
        7,
        2,
        "Codertocat",
    )
    assert event.round == RoundTrigger(
        key="comment:284312630",
        review_id=237895671,
        comment_id=284312630,
        instruction="rename the helper\nand its test",
        thread_id=284312630,  # a thread's first comment: answered in its own thread
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("Maybe you should use more emoji on this line.", "comment is not a command"),
        ("/agent", "comment is not a command"),  # a command, but no instruction
        ("/agents do it", "comment is not a command"),
        ("Please\n/agent do it", "comment is not a command"),  # first line only
        ("/agent plan", "'/agent plan' is an issue command, not one for a pull request"),
    ],
)
def test_parse__review_comment_without_a_command__ignored(body: str, reason: str) -> None:
    """A changes_requested review's line comments are covered by the review's own event."""
    payload = review_commented(body)
    assert parse("pull_request_review_comment", payload, "d", TRIGGERS) == Ignored(reason)


def test_parse__review_comment_on_another_branch__ignored() -> None:
    payload = review_commented("/agent do it", ref="feature/x")
    assert parse("pull_request_review_comment", payload, "d", TRIGGERS) == Ignored(
        "branch 'feature/x' is not an agent branch"
    )


def test_parse__pr_conversation_revise_command__revise_named_by_the_pr() -> None:
    payload = pr_conversation("/agent rename the helper", number=12)
    event = _event(parse("issue_comment", payload, "d", TRIGGERS))
    assert (event.intent, event.issue_number, event.pr_number, event.actor) == (
        Intent.REVISE,
        0,  # the payload names only the pull request
        12,
        "Codertocat",
    )
    assert event.round == RoundTrigger(
        key="comment:492700400", comment_id=492700400, instruction="rename the helper"
    )


@pytest.mark.parametrize(
    ("event_name", "payload"),
    [
        ("issue_comment", pr_conversation("/agent   fix ci")),
        ("pull_request_review_comment", review_commented("/agent fix ci\nthe lint job")),
    ],
)
def test_parse__repair_command_on_the_pr__repair_keyed_by_the_comment(
    event_name: str, payload: dict[str, Any]
) -> None:
    event = _event(parse(event_name, payload, "d", TRIGGERS))
    assert (event.intent, event.pr_number) == (Intent.REPAIR, 2)
    assert event.round is not None
    assert (event.round.key, event.round.head_sha, event.round.instruction) == (
        f"comment:{event.round.comment_id}",
        "",
        "",
    )


def test_parse__repair_command_on_an_issue__ignored() -> None:
    assert parse("issue_comment", commented("/agent fix ci"), "d", TRIGGERS) == Ignored(
        "comment is not a command"
    )


def test_parse__revise_command_on_an_issue__ignored() -> None:
    assert isinstance(parse("issue_comment", commented("/agent do it"), "d", TRIGGERS), Ignored)


def test_parse__custom_round_commands() -> None:
    triggers = dataclasses.replace(TRIGGERS, revise_command="/bot", repair_command="/bot mend")
    assert _event(parse("issue_comment", pr_conversation("/bot mend"), "d", triggers)).intent is (
        Intent.REPAIR
    )
    revise = _event(parse("issue_comment", pr_conversation("/bot fix ci"), "d", triggers))
    assert revise.round is not None
    assert (revise.intent, revise.round.instruction) == (Intent.REVISE, "fix ci")
    assert parse("issue_comment", pr_conversation("/agent do it"), "d", triggers) == Ignored(
        "comment is not a command"
    )


@pytest.mark.parametrize("event_name", ["check_suite", "check_run", "workflow_run"])
@pytest.mark.parametrize("conclusion", ["failure", "timed_out"])
def test_parse__checks_failed_on_a_task_branch__repair_keyed_by_the_head_sha(
    event_name: str, conclusion: str
) -> None:
    payload = checks_completed(event_name, conclusion)
    event = _event(parse(event_name, payload, "d", TRIGGERS))
    sha = payload[event_name]["head_sha"]
    assert (event.intent, event.issue_number, event.pr_number, event.actor) == (
        Intent.REPAIR,
        7,
        2,
        "Codertocat",
    )
    assert event.repo == payload["repository"]["full_name"]
    assert event.round == RoundTrigger(key=f"checks:{sha}", head_sha=sha)


def test_parse__checks_failed__whatever_the_sender() -> None:
    """GitHub sends checks as the app or the pusher (our bot): the router decides by sha."""
    payload = checks_completed("check_suite")
    payload["sender"] = {"login": "github-actions[bot]", "type": "Bot"}
    event = _event(parse("check_suite", payload, "d", TRIGGERS))
    assert (event.intent, event.actor, event.actor_is_bot) == (
        Intent.REPAIR,
        "github-actions[bot]",
        True,
    )
    assert event.round == RoundTrigger(key=f"checks:{EXAMPLE_SHA}", head_sha=EXAMPLE_SHA)


@pytest.mark.parametrize("event_name", ["check_suite", "check_run", "workflow_run"])
def test_parse__checks_failed_without_a_pull_request__repair_without_pr(event_name: str) -> None:
    payload = checks_completed(event_name)
    payload[event_name]["pull_requests"] = []
    assert _event(parse(event_name, payload, "d", TRIGGERS)).pr_number is None


def test_parse__checks_listing_another_branchs_pull_request__not_taken_for_ours() -> None:
    payload = checks_completed("workflow_run")
    payload["workflow_run"]["pull_requests"][0]["head"]["ref"] = "feature/x"
    assert _event(parse("workflow_run", payload, "d", TRIGGERS)).pr_number is None


@pytest.mark.parametrize("event_name", ["check_suite", "check_run", "workflow_run"])
@pytest.mark.parametrize(
    "conclusion", ["success", "neutral", "cancelled", "skipped", "action_required", None]
)
def test_parse__checks_not_failed__ignored(event_name: str, conclusion: str | None) -> None:
    payload = checks_completed(event_name, conclusion)
    assert parse(event_name, payload, "d", TRIGGERS) == Ignored(
        f"{event_name} conclusion {conclusion!r} is not a failure"
    )


@pytest.mark.parametrize("event_name", ["check_suite", "check_run", "workflow_run"])
@pytest.mark.parametrize("branch", ["master", "agent/issue-07", None])
def test_parse__checks_failed_elsewhere__ignored(event_name: str, branch: str | None) -> None:
    payload = checks_completed(event_name, branch=branch)
    assert parse(event_name, payload, "d", TRIGGERS) == Ignored(
        f"branch {branch!r} is not an agent branch"
    )


def test_parse__workflow_run_from_a_fork__ignored() -> None:
    payload = checks_completed("workflow_run")
    payload["workflow_run"]["head_repository"]["full_name"] = "mallory/octo-repo"
    assert parse("workflow_run", payload, "d", TRIGGERS) == Ignored(
        "head branch is not in this repository"
    )


@pytest.mark.parametrize(
    ("event_name", "action"),
    [
        ("check_suite", "requested"),
        ("check_suite", "rerequested"),
        ("check_run", "created"),
        ("check_run", "rerequested"),
        ("workflow_run", "requested"),
        ("workflow_run", "in_progress"),
    ],
)
def test_parse__checks_not_completed__ignored(event_name: str, action: str) -> None:
    payload = {**checks_completed(event_name), "action": action}
    assert parse(event_name, payload, "d", TRIGGERS) == Ignored(
        f"{event_name}.{action} is not handled"
    )


@pytest.mark.parametrize(
    ("event_name", "payload", "field"),
    [
        ("pull_request_review", _without(review_submitted(), "review", "id"), "review.id"),
        ("pull_request_review", _without(review_submitted(), "review", "user"), "review.user"),
        (
            "pull_request_review",
            _without(review_submitted(), "pull_request", "number"),
            "pull_request.number",
        ),
        (
            "pull_request_review_comment",
            _without(review_commented("/agent x"), "comment", "id"),
            "comment.id",
        ),
        ("issue_comment", _without(pr_conversation("/agent x"), "comment", "id"), "comment.id"),
        (
            "check_suite",
            _without(checks_completed("check_suite"), "check_suite", "head_sha"),
            "check_suite.head_sha",
        ),
        (
            "check_run",
            _without(checks_completed("check_run"), "check_run", "check_suite"),
            "check_run.check_suite",
        ),
        ("workflow_run", _without(checks_completed("workflow_run"), "repository"), "repository"),
    ],
)
def test_parse__round_missing_field__bad_event(
    event_name: str, payload: dict[str, Any], field: str
) -> None:
    with pytest.raises(BadEvent, match=field.replace(".", r"\.")):
        parse(event_name, payload, "d", TRIGGERS)


def test_parse__round_ids_beyond_32_bits__kept() -> None:
    """Comment and review ids outgrew 32 bits; unlike issue numbers they are not capped."""
    payload = pr_conversation("/agent do it")
    payload["comment"]["id"] = 2**33
    event = _event(parse("issue_comment", payload, "d", TRIGGERS))
    assert event.round is not None
    assert event.round.key == f"comment:{2**33}"


def test_parse__a_command_written_as_a_reply__answered_in_the_threads_first_comment() -> None:
    payload = review_commented("/agent rename the helper")
    payload["comment"]["in_reply_to_id"] = 111
    event = parse("pull_request_review_comment", payload, "d-reply", TRIGGERS)
    assert isinstance(event, Event)
    assert event.round is not None
    assert (event.round.comment_id, event.round.thread_id) == (payload["comment"]["id"], 111)


def _closed(payload: dict[str, Any], where: str) -> dict[str, Any]:
    return {**payload, where: {**payload[where], "state": "closed"}}


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("pull_request_review", _closed(review_submitted(), "pull_request")),
        (
            "pull_request_review_comment",
            _closed(review_commented("/agent rename it"), "pull_request"),
        ),
        ("issue_comment", _closed(pr_conversation("/agent rename it"), "issue")),
        ("issue_comment", _closed(pr_conversation("/agent fix ci"), "issue")),
    ],
)
def test_parse__round_on_a_closed_pull_request__ignored(name: str, payload: dict[str, Any]) -> None:
    """A merged or abandoned pull request gets no round: nothing more is pushed to it."""
    assert parse(name, payload, "d", TRIGGERS) == Ignored("pull request is closed")
    open_again = {k: v for k, v in payload.items()}
    for where in ("pull_request", "issue"):
        if where in open_again:
            open_again[where] = {**open_again[where], "state": "open"}
    assert isinstance(parse(name, open_again, "d", TRIGGERS), Event)
