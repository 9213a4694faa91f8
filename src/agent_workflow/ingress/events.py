"""From a GitHub webhook (event name + JSON payload) to an `Event`, or `Ignored` with a reason.

Pure and deterministic. A delivery is parsed once, by the ingress, with the
configured triggers: it decides whether the delivery is stored at all, and the
resulting `Event` is stored beside the payload and routed as stored (the job
handler never parses the payload again, except for rows stored before the parsed
event was). Only events that drive a phase become `Event`s; trust and bot
filtering happen in the router, which knows who we are and who may act.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent_workflow.core.errors import BadEvent
from agent_workflow.core.model import BRANCH_PREFIX, Event, Intent
from agent_workflow.core.text import clean_text


@dataclass(frozen=True)
class Triggers:
    """The labels and comment commands that start phases (DESIGN §1).

    No defaults here: they are `AW_PLAN_LABEL`, `AW_APPROVE_LABEL`, `AW_PLAN_COMMAND`,
    `AW_APPROVE_COMMAND` and `AW_RETRY_COMMAND` in `Settings`. Labels compare
    case-insensitively (GitHub treats `Agent` and `agent` as one label); commands
    compare exactly, after surrounding whitespace is stripped and inner runs of
    whitespace are collapsed to one space. A merged pull request counts when its head
    is a task branch (`BRANCH_PREFIX` of the core, not a trigger).
    """

    plan_label: str
    approve_label: str
    plan_command: str
    approve_command: str
    retry_command: str


# Issue and PR numbers are stored in 32-bit INTEGER columns; larger is malformed, not a task.
MAX_NUMBER = 2**31 - 1
_TASK_BRANCH = re.compile(re.escape(BRANCH_PREFIX) + r"([1-9][0-9]{0,9})")


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
        case _:
            kind = f"{event_name}.{action}" if isinstance(action, str) else event_name
            return Ignored(f"{kind} is not handled")


def _issue_labeled(payload: Mapping[str, Any], delivery_id: str, t: Triggers) -> Event | Ignored:
    name = _str(_obj(payload, "label"), "name", "label.name")
    if name.casefold() == t.plan_label.casefold():
        return _issue_event(payload, delivery_id, Intent.START_PLAN)
    if name.casefold() == t.approve_label.casefold():
        return _issue_event(payload, delivery_id, Intent.APPROVE)
    return Ignored(f"label {name!r} is not a trigger")


def _issue_comment(payload: Mapping[str, Any], delivery_id: str, t: Triggers) -> Event | Ignored:
    issue = _obj(payload, "issue")
    if issue.get("pull_request") is not None:
        # GitHub reports pull request comments as issue comments; commands live on issues.
        return Ignored("comment on a pull request")
    body = _opt_str(_obj(payload, "comment"), "body", "comment.body")
    commands = {
        _squash(t.plan_command): Intent.START_PLAN,
        _squash(t.approve_command): Intent.APPROVE,
        _squash(t.retry_command): Intent.RETRY,
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
) -> Event:
    repository = _obj(payload, "repository")
    sender = _obj(payload, "sender")
    return Event(
        delivery_id=delivery_id,
        intent=intent,
        repo=_repo_name(payload),
        issue_number=issue_number,
        actor=_str(sender, "login", "sender.login"),
        actor_is_bot=sender.get("type") == "Bot",
        title=title,
        body=body,
        clone_url=_opt_str(repository, "clone_url", "repository.clone_url"),
        default_branch=_opt_str(repository, "default_branch", "repository.default_branch")
        or "main",
        pr_number=pr_number,
    )


def _command_line(body: str) -> str:
    """The first line a reader sees, whitespace-squashed (hidden comments do not count)."""
    for line in clean_text(body).splitlines():
        if line.strip():
            return _squash(line)
    return ""


def _squash(text: str) -> str:
    return " ".join(text.split())


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


def _int(parent: Mapping[str, Any], key: str, path: str) -> int:
    value = parent.get(key)
    # bool is an int in Python; `true` is never an issue number.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_NUMBER:
        raise BadEvent(f"{path} is missing or not a positive 32-bit integer")
    return value
