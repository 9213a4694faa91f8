"""From a GitHub webhook (event name + JSON payload) to an `Event`, or `Ignored` with a reason.

Pure and deterministic. A delivery is parsed once, by the ingress, with the
configured triggers: it decides whether the delivery is stored at all, and the
resulting `Event` is stored beside the payload and routed as stored (the job
handler never parses the payload again, except for rows stored before the parsed
event was). Only events that drive a phase become `Event`s; trust and bot
filtering happen in the router, which knows who we are and who may act.

After the pull request, rounds (`Intent.REVISE`, `Intent.REPAIR`) are parsed from
reviews, review comments, conversation comments on the pull request and failing
checks; each carries the `RoundTrigger` that names it. Whether the pull request is
a task's, whether a check's head commit is the one we pushed, and whether the
reviewer is trusted are the router's questions, not the parser's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from agent_workflow.core.errors import BadEvent
from agent_workflow.core.model import BRANCH_PREFIX, Event, Intent, RoundTrigger
from agent_workflow.core.text import clean_text, command_key, first_repeat, label_key
from agent_workflow.core.trust import is_bot


@dataclass(frozen=True)
class Triggers:
    """The labels and comment commands that start phases (DESIGN §1).

    No defaults here: they are `AW_PLAN_LABEL`, `AW_APPROVE_LABEL`, `AW_PLAN_COMMAND`,
    `AW_APPROVE_COMMAND`, `AW_RETRY_COMMAND`, `AW_REVISE_COMMAND` and
    `AW_REPAIR_COMMAND` in `Settings`. Labels compare case-insensitively (GitHub treats
    `Agent` and `agent` as one label); commands compare exactly, after surrounding
    whitespace is stripped and inner runs of whitespace are collapsed to one space.
    `revise_command` is a prefix: on a pull request, a first line that is it, a space
    and an instruction starts a revise round. A merged pull request counts when its
    head is a task branch (`BRANCH_PREFIX` of the core, not a trigger).
    """

    plan_label: str
    approve_label: str
    plan_command: str
    approve_command: str
    retry_command: str
    revise_command: str
    repair_command: str

    def narrowed_by(self, repository: Mapping[str, str]) -> Triggers:
        """These triggers with a repository's own issue triggers in place of ours
        (`RepoSettings.triggers`). Unchanged when the result would make two labels or two
        commands equal: a trigger that meant two things would act on one of them at random."""
        names = REPO_TRIGGERS & repository.keys()
        if not names:
            return self
        merged = replace(self, **{name: repository[name] for name in names})
        labels = [label_key(merged.plan_label), label_key(merged.approve_label)]
        commands = [
            command_key(c)
            for c in (
                merged.plan_command,
                merged.approve_command,
                merged.retry_command,
                merged.revise_command,
                merged.repair_command,
            )
        ]
        clash = first_repeat(labels) or first_repeat(commands)
        return self if clash else merged


#: The triggers a repository may name for itself (the round commands stay the deployment's).
REPO_TRIGGERS = frozenset(
    {"plan_label", "approve_label", "plan_command", "approve_command", "retry_command"}
)
#: Intents whose trigger a repository may rename: deciding them needs its settings.
REPO_INTENTS = frozenset({Intent.START_PLAN, Intent.APPROVE, Intent.RETRY})


# Issue and PR numbers are stored in 32-bit INTEGER columns; larger is malformed, not a task.
MAX_NUMBER = 2**31 - 1
_TASK_BRANCH = re.compile(re.escape(BRANCH_PREFIX) + r"([1-9][0-9]{0,9})")
# A round's instruction (a review body, a command's text) goes into the stored event and
# the agent's prompt; a review longer than this is cut, not refused.
MAX_INSTRUCTION = 8_000
# Check conclusions that ask for a repair; success, neutral, cancelled, skipped,
# stale and action_required do not.
_FAILED = frozenset({"failure", "timed_out"})
_CHECK_EVENTS = frozenset({"check_suite", "check_run", "workflow_run"})


@dataclass(frozen=True)
class Ignored:
    """An event that asks for nothing; `reason` is for logs and the HTTP answer."""

    reason: str


def parse(
    event_name: str, payload: Mapping[str, Any], delivery_id: str, triggers: Triggers
) -> Event | Ignored:
    """Parse one delivery. Raises `BadEvent` when a handled event lacks a field it needs."""
    action = payload.get("action")
    match event_name, action:
        case "issues", "labeled":
            return _issue_labeled(payload, delivery_id, triggers)
        case "issue_comment", "created":
            return _issue_comment(payload, delivery_id, triggers)
        case "pull_request", "closed":
            return _pull_request_closed(payload, delivery_id)
        case "pull_request_review", "submitted":
            return _review_submitted(payload, delivery_id)
        case "pull_request_review_comment", "created":
            return _review_comment(payload, delivery_id, triggers)
        case name, "completed" if name in _CHECK_EVENTS:
            return _checks_completed(name, payload, delivery_id)
        case _:
            kind = f"{event_name}.{action}" if isinstance(action, str) else event_name
            return Ignored(f"{kind} is not handled")


def may_be_repo_trigger(event_name: str, payload: Mapping[str, Any], own_login: str = "") -> bool:
    """True for a delivery a repository's own triggers could make an event of, though ours
    do not: a label added to an issue, or a comment on an issue whose first line starts
    with `/` (a repository's commands must), by a person. Such a delivery is kept and
    decided when it is routed, with the repository's settings (`ingress.repo_triggers`).
    A bot's (ours included: `own_login`) is not: the router would ignore it anyway."""
    sender = payload.get("sender")
    if isinstance(sender, Mapping):
        login = sender.get("login")
        if is_bot(login if isinstance(login, str) else "", sender.get("type") == "Bot", own_login):
            return False
    action = payload.get("action")
    if event_name == "issues" and action == "labeled":
        return True
    if event_name != "issue_comment" or action != "created":
        return False
    issue, comment = payload.get("issue"), payload.get("comment")
    if not isinstance(issue, Mapping) or issue.get("pull_request") is not None:
        return False
    body = comment.get("body") if isinstance(comment, Mapping) else None
    return isinstance(body, str) and _command_line(body).startswith("/")


def _issue_labeled(payload: Mapping[str, Any], delivery_id: str, t: Triggers) -> Event | Ignored:
    name = _str(_obj(payload, "label"), "name", "label.name")
    if name.casefold() == t.plan_label.casefold():
        return _issue_event(payload, delivery_id, Intent.START_PLAN)
    if name.casefold() == t.approve_label.casefold():
        return _issue_event(payload, delivery_id, Intent.APPROVE)
    return Ignored(f"label {name!r} is not a trigger")


def _issue_comment(payload: Mapping[str, Any], delivery_id: str, t: Triggers) -> Event | Ignored:
    issue = _obj(payload, "issue")
    comment = _obj(payload, "comment")
    body = _opt_str(comment, "body", "comment.body")
    if issue.get("pull_request") is not None and issue.get("state") == "closed":
        return Ignored("pull request is closed")
    if issue.get("pull_request") is not None:
        # GitHub reports pull request conversation comments as issue comments. The issue
        # commands never act on one (its number is the PR's, not a task's issue); only the
        # round commands do, and the payload names the PR alone: the router finds the task
        # by `pr_number` (issue_number 0).
        return _pr_command(
            payload,
            delivery_id,
            t,
            body,
            comment_id=_int(comment, "id", "comment.id", maximum=None),
            review_id=None,
            issue_number=0,
            pr_number=_int(issue, "number", "issue.number"),
        )
    commands = {
        command_key(t.plan_command): Intent.START_PLAN,
        command_key(t.approve_command): Intent.APPROVE,
        command_key(t.retry_command): Intent.RETRY,
    }
    intent = commands.get(_command_line(body))
    if intent is None:
        return Ignored("comment is not a command")
    return _issue_event(payload, delivery_id, intent)


def _pull_request_closed(payload: Mapping[str, Any], delivery_id: str) -> Event | Ignored:
    pull = _obj(payload, "pull_request")
    if pull.get("merged") is not True:
        return Ignored("pull request closed without merging")
    head = _obj(pull, "head", "pull_request.head")
    ref = _str(head, "ref", "pull_request.head.ref")
    issue_number = _issue_from_branch(ref)
    if issue_number is None:
        return Ignored(f"branch {ref!r} is not an agent branch")
    repo = _repo_name(payload)
    if _head_repo(head) != repo:
        # A fork may name its branch like ours; only our own pushes count. GitHub always
        # sends `head.repo`: absent, or null (a deleted fork), it is not ours either.
        return Ignored("head branch is not in this repository")
    return _event(
        payload,
        delivery_id,
        Intent.MERGED,
        issue_number,
        pr_number=_int(pull, "number", "pull_request.number"),
    )


def _review_submitted(payload: Mapping[str, Any], delivery_id: str) -> Event | Ignored:
    review = _obj(payload, "review")
    state = _str(review, "state", "review.state")
    if state.casefold() != "changes_requested":
        return Ignored(f"review state {state!r} asks for no changes")
    pull = _obj(payload, "pull_request")
    issue_number = _task_pull_request(payload, pull)
    if isinstance(issue_number, Ignored):
        return issue_number
    review_id = _int(review, "id", "review.id", maximum=None)
    return _event(
        payload,
        delivery_id,
        Intent.REVISE,
        issue_number,
        pr_number=_int(pull, "number", "pull_request.number"),
        round=RoundTrigger(
            key=f"review:{review_id}",
            review_id=review_id,
            instruction=_instruction(_opt_str(review, "body", "review.body")),
        ),
        # The reviewer, not whoever the delivery names as sender, asked for the changes.
        actor=(_obj(review, "user", "review.user"), "review.user.login"),
    )


def _review_comment(payload: Mapping[str, Any], delivery_id: str, t: Triggers) -> Event | Ignored:
    comment = _obj(payload, "comment")
    body = _opt_str(comment, "body", "comment.body")
    pull = _obj(payload, "pull_request")
    issue_number = _task_pull_request(payload, pull)
    if isinstance(issue_number, Ignored):
        return issue_number
    review_id = None
    if comment.get("pull_request_review_id") is not None:
        review_id = _int(
            comment, "pull_request_review_id", "comment.pull_request_review_id", maximum=None
        )
    comment_id = _int(comment, "id", "comment.id", maximum=None)
    thread_id = comment_id
    if comment.get("in_reply_to_id") is not None:
        thread_id = _int(comment, "in_reply_to_id", "comment.in_reply_to_id", maximum=None)
    return _pr_command(
        payload,
        delivery_id,
        t,
        body,
        comment_id=comment_id,
        review_id=review_id,
        issue_number=issue_number,
        pr_number=_int(pull, "number", "pull_request.number"),
        thread_id=thread_id,
    )


def _pr_command(
    payload: Mapping[str, Any],
    delivery_id: str,
    t: Triggers,
    body: str,
    *,
    comment_id: int,
    review_id: int | None,
    issue_number: int,
    pr_number: int,
    thread_id: int | None = None,
) -> Event | Ignored:
    """A comment on a pull request: the repair command, a revise instruction, or nothing.

    The repair command is matched exactly first (it usually begins with the revise
    command). A first line that is exactly one of the issue commands (`/agent plan`
    begins with `/agent` too) is not an instruction: those act on issues only.
    """
    line = _command_line(body)
    key = f"comment:{comment_id}"
    if line == command_key(t.repair_command):
        intent, instruction = Intent.REPAIR, ""
    elif line in {command_key(c) for c in (t.plan_command, t.approve_command, t.retry_command)}:
        return Ignored(f"{line!r} is an issue command, not one for a pull request")
    else:
        text = _revise_instruction(body, command_key(t.revise_command))
        if text is None:
            return Ignored("comment is not a command")
        intent, instruction = Intent.REVISE, text
    return _event(
        payload,
        delivery_id,
        intent,
        issue_number,
        pr_number=pr_number,
        round=RoundTrigger(
            key=key,
            review_id=review_id,
            comment_id=comment_id,
            instruction=instruction,
            thread_id=thread_id,
        ),
    )


def _checks_completed(name: str, payload: Mapping[str, Any], delivery_id: str) -> Event | Ignored:
    """`check_suite`, `check_run` or `workflow_run` completed: a failure on a task branch.

    Counted whoever the sender is (GitHub sends checks as the app or the pusher, often
    our own bot): the router decides by the head commit, which must be the head of the
    task's pull request.
    """
    run = _obj(payload, name)
    conclusion = run.get("conclusion")
    if conclusion not in _FAILED:
        return Ignored(f"{name} conclusion {conclusion!r} is not a failure")
    if name == "check_run":
        branch = _obj(run, "check_suite", "check_run.check_suite").get("head_branch")
    else:
        branch = run.get("head_branch")
    # GitHub sends a null head branch for a commit no branch points at (a fork's, a tag's).
    issue_number = _issue_from_branch(branch) if isinstance(branch, str) else None
    if issue_number is None:
        return Ignored(f"branch {branch!r} is not an agent branch")
    head_repo = run.get("head_repository")  # workflow_run only: a fork's branch may be named so
    if isinstance(head_repo, Mapping) and head_repo.get("full_name") != _repo_name(payload):
        return Ignored("head branch is not in this repository")
    head_sha = _str(run, "head_sha", f"{name}.head_sha")
    return _event(
        payload,
        delivery_id,
        Intent.REPAIR,
        issue_number,
        pr_number=_pull_request_of(run, name, str(branch)),
        round=RoundTrigger(key=f"checks:{head_sha}", head_sha=head_sha),
    )


def _pull_request_of(run: Mapping[str, Any], name: str, branch: str) -> int | None:
    """The number of the run's pull request whose head is `branch` (None: none listed).

    GitHub lists the pull requests whose head is the checked commit; a `workflow_run`
    may also list ones it merely shares a branch name with, so the head must match.
    """
    pulls = run.get("pull_requests")
    if not isinstance(pulls, list):
        return None
    for index, pull in enumerate(pulls):
        path = f"{name}.pull_requests[{index}]"
        if not isinstance(pull, Mapping):
            raise BadEvent(f"{path} is not an object")
        head = pull.get("head")
        if not isinstance(head, Mapping) or head.get("ref") == branch:
            return _int(pull, "number", f"{path}.number")
    return None


def _task_pull_request(payload: Mapping[str, Any], pull: Mapping[str, Any]) -> int | Ignored:
    """The issue number of a pull request on a task branch of this repository."""
    head = _obj(pull, "head", "pull_request.head")
    ref = _str(head, "ref", "pull_request.head.ref")
    issue_number = _issue_from_branch(ref)
    if issue_number is None:
        return Ignored(f"branch {ref!r} is not an agent branch")
    if _head_repo(head) != _repo_name(payload):
        return Ignored("head branch is not in this repository")
    if pull.get("state") == "closed":  # merged or abandoned: nothing more is pushed to it
        return Ignored("pull request is closed")
    return issue_number


def _revise_instruction(body: str, command: str) -> str | None:
    """The instruction after the revise command, or None when the comment is not one.

    The first visible line must be the command, a space and some text; the instruction
    is that text (whitespace squashed) and any lines after it.
    """
    lines = clean_text(body).splitlines()
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        first = command_key(line)
        if not first.startswith(command + " "):
            return None
        rest = "\n".join([first.removeprefix(command + " "), *lines[index + 1 :]])
        return _instruction(rest)
    return None


def _instruction(text: str) -> str:
    """What a round's agent is asked: cleaned (what a reader sees), stripped, capped."""
    return clean_text(text).strip()[:MAX_INSTRUCTION].rstrip()


def _issue_event(payload: Mapping[str, Any], delivery_id: str, intent: Intent) -> Event:
    issue = _obj(payload, "issue")
    return _event(
        payload,
        delivery_id,
        intent,
        _int(issue, "number", "issue.number"),
        title=_opt_str(issue, "title", "issue.title"),
        body=_opt_str(issue, "body", "issue.body"),
    )


def _event(
    payload: Mapping[str, Any],
    delivery_id: str,
    intent: Intent,
    issue_number: int,
    *,
    title: str = "",
    body: str = "",
    pr_number: int | None = None,
    round: RoundTrigger | None = None,
    actor: tuple[Mapping[str, Any], str] | None = None,
) -> Event:
    """`actor`: the user object (and its login's path) who acted, when not the sender."""
    repository = _obj(payload, "repository")
    sender, login = actor or (_obj(payload, "sender"), "sender.login")
    return Event(
        delivery_id=delivery_id,
        intent=intent,
        repo=_repo_name(payload),
        issue_number=issue_number,
        actor=_str(sender, "login", login),
        actor_is_bot=sender.get("type") == "Bot",
        title=title,
        body=body,
        clone_url=_opt_str(repository, "clone_url", "repository.clone_url"),
        default_branch=_opt_str(repository, "default_branch", "repository.default_branch")
        or "main",
        pr_number=pr_number,
        round=round,
        repo_id=_repo_id(repository),
        installation_id=installation_id(payload),
    )


def _repo_id(repository: Mapping[str, Any]) -> int | None:
    """`repository.id`, which a rename or transfer keeps (GitHub always sends it; a
    payload without one is keyed by `full_name` alone, as before ids were kept)."""
    if repository.get("id") is None:
        return None
    return _int(repository, "id", "repository.id", maximum=None)


def installation_id(payload: Mapping[str, Any]) -> int | None:
    """`installation.id`: the GitHub App installation that sent the event (None for a
    repository webhook)."""
    installation = payload.get("installation")
    if not isinstance(installation, Mapping) or installation.get("id") is None:
        return None
    return _int(installation, "id", "installation.id", maximum=None)


def _command_line(body: str) -> str:
    """The first line a reader sees, whitespace-squashed (hidden comments do not count)."""
    for line in clean_text(body).splitlines():
        if line.strip():
            return command_key(line)
    return ""


def _issue_from_branch(ref: str) -> int | None:
    # Exactly the branch we create (`agent/issue-7`): no leading zeros, nothing after.
    match = _TASK_BRANCH.fullmatch(ref)
    if match is None or int(match.group(1)) > MAX_NUMBER:
        return None
    return int(match.group(1))


def _repo_name(payload: Mapping[str, Any]) -> str:
    name = _str(_obj(payload, "repository"), "full_name", "repository.full_name")
    if "/" not in name:
        raise BadEvent(f"repository.full_name {name!r} is not owner/name")
    return name


def _head_repo(head: Mapping[str, Any]) -> str | None:
    repo = head.get("repo")
    if not isinstance(repo, Mapping):
        return None  # null when the fork was deleted: certainly not ours
    name = repo.get("full_name")
    return name if isinstance(name, str) else None


def _obj(parent: Mapping[str, Any], key: str, path: str | None = None) -> Mapping[str, Any]:
    value = parent.get(key)
    if not isinstance(value, Mapping):
        raise BadEvent(f"{path or key} is missing or not an object")
    return value


def _str(parent: Mapping[str, Any], key: str, path: str) -> str:
    value = parent.get(key)
    if not isinstance(value, str) or not value:
        raise BadEvent(f"{path} is missing or not a non-empty string")
    return value


def _opt_str(parent: Mapping[str, Any], key: str, path: str) -> str:
    """A string that may be absent or null (issue bodies are null when empty)."""
    value = parent.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadEvent(f"{path} is not a string")
    return value


def _int(
    parent: Mapping[str, Any], key: str, path: str, *, maximum: int | None = MAX_NUMBER
) -> int:
    """A positive integer: 32-bit for issue and PR numbers (`maximum=None`: GitHub's ids,
    which outgrew 32 bits for comments and reviews long ago)."""
    value = parent.get(key)
    # bool is an int in Python; `true` is never an issue number.
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value <= 0
        or (maximum is not None and value > maximum)
    ):
        kind = "positive integer" if maximum is None else "positive 32-bit integer"
        raise BadEvent(f"{path} is missing or not a {kind}")
    return value
