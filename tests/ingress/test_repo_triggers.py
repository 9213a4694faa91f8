"""A repository's own issue triggers (issue 12 item 4, `triggers:`): what the ingress keeps
for them, how they narrow the deployment's, and how the handler decides with them."""

from __future__ import annotations

import pytest

from agent_workflow.core.model import Intent
from agent_workflow.core.repo_settings import RepoConfig, RepoSettings
from agent_workflow.forge.repo_config import parse_config
from agent_workflow.ingress.events import Ignored, may_be_repo_trigger, parse
from agent_workflow.ingress.repo_triggers import RepoTriggers
from tests.ingress.helpers import TRIGGERS, commented, labeled, pr_conversation


class OneConfig:
    """`RepoConfigs` answering one settings file for every repository; counts the reads."""

    def __init__(self, text: str) -> None:
        self.settings = parse_config(text)
        self.reads = 0

    async def for_repo(self, repo: str, default_branch: str) -> RepoConfig:
        self.reads += 1
        return RepoConfig(self.settings)


@pytest.mark.parametrize(
    ("event", "payload", "kept"),
    [
        ("issues", labeled("robot-go"), True),
        ("issues", labeled("bug"), True),
        ("issues", {**labeled("bug"), "action": "unlabeled"}, False),
        ("issue_comment", commented("/robot plan"), True),
        ("issue_comment", commented("  /robot plan\nplease"), True),
        ("issue_comment", commented("please /robot plan"), False),
        ("issue_comment", commented("<!-- x -->\nhello"), False),
        ("issue_comment", commented("/robot plan", pr=True), False),  # a PR's: rounds only
        ("issue_comment", pr_conversation("/robot plan"), False),
        ("issue_comment", {**commented("/robot plan"), "action": "edited"}, False),
        ("issue_comment", {**commented("x"), "comment": {"id": 1, "body": None}}, False),
    ],
)
def test_may_be_repo_trigger__labels_added_and_slash_commands_on_issues(
    event: str, payload: dict[str, object], kept: bool
) -> None:
    assert may_be_repo_trigger(event, payload) is kept


def test_narrowed_by__replaces_the_named_triggers_only() -> None:
    narrowed = TRIGGERS.narrowed_by({"plan_label": "robot-go", "retry_command": "/again"})
    assert (narrowed.plan_label, narrowed.retry_command) == ("robot-go", "/again")
    assert narrowed.approve_label == TRIGGERS.approve_label
    assert narrowed.revise_command == TRIGGERS.revise_command  # never the repository's
    assert TRIGGERS.narrowed_by({}) is TRIGGERS


@pytest.mark.parametrize(
    "given",
    [
        {"plan_label": TRIGGERS.approve_label.upper()},  # one label meaning two things
        {"plan_command": TRIGGERS.approve_command},
        {"retry_command": TRIGGERS.revise_command},  # would shadow the round command
        {"approve_command": f"  {TRIGGERS.repair_command}  "},
    ],
)
def test_narrowed_by__a_collision_keeps_the_deployments(given: dict[str, str]) -> None:
    assert TRIGGERS.narrowed_by(given) is TRIGGERS


@pytest.mark.parametrize(
    "text",
    [
        "triggers: {plan_command: plan}",  # not a slash command: the ingress would drop it
        "triggers: {plan_label: a, approve_label: A}",
        "triggers: {plan_command: /go, retry_command: ' /go '}",
        "triggers: {plan_label: ''}",
        'triggers: {plan_label: "a\\nb"}',
        "triggers: {plan_label: " + "x" * 51 + "}",
        "triggers: {revise_command: /x}",  # the round commands stay the deployment's
    ],
)
def test_config__invalid_triggers_refused(text: str) -> None:
    with pytest.raises(ValueError, match="validation error"):
        parse_config(text)


async def test_repo_triggers__robot_go_plans_and_agent_does_nothing() -> None:
    configs = OneConfig("triggers:\n  plan_label: robot-go\n  plan_command: /robot plan\n")
    triggers = RepoTriggers(TRIGGERS, configs)

    planned = await triggers.parse("issues", labeled("robot-go"), "d1")
    ignored = await triggers.parse("issues", labeled("agent"), "d2")
    commanded = await triggers.parse("issue_comment", commented("/robot plan"), "d3")
    approved = await triggers.parse("issue_comment", commented("/approve"), "d4")

    assert isinstance(planned, type(parse("issues", labeled("agent"), "x", TRIGGERS)))
    assert [getattr(e, "intent", None) for e in (planned, commanded, approved)] == [
        Intent.START_PLAN,
        Intent.START_PLAN,
        Intent.APPROVE,  # not renamed: the deployment's
    ]
    assert isinstance(ignored, Ignored)
    assert configs.reads == 4


async def test_repo_triggers__decides__only_issue_triggers_and_kept_deliveries() -> None:
    issue_event = parse("issues", labeled("agent"), "d", TRIGGERS)
    round_event = parse("issue_comment", pr_conversation("/agent fix it"), "d", TRIGGERS)
    assert not isinstance(issue_event, Ignored)
    assert not isinstance(round_event, Ignored)
    assert RepoTriggers.decides("issues", None)
    assert RepoTriggers.decides("issues", issue_event)
    assert RepoTriggers.decides("issue_comment", issue_event)
    assert not RepoTriggers.decides("issue_comment", round_event)
    assert not RepoTriggers.decides("dashboard", issue_event)  # a retry nobody typed


def test_settings__triggers_given_are_carried_trimmed() -> None:
    settings = parse_config("triggers: {plan_label: ' robot-go ', retry_command: /again}")
    assert dict(settings.triggers) == {"plan_label": "robot-go", "retry_command": "/again"}
    assert dict(RepoSettings().triggers) == {}


@pytest.mark.parametrize(
    "payload",
    [
        labeled("agent-planned", sender="agent-bot"),  # our own effect's label
        labeled("robot-go", sender="renovate[bot]", sender_type="Bot"),
        commented("/robot plan", sender="ci-helper", sender_type="Bot"),
    ],
)
def test_may_be_repo_trigger__a_bots_own_labels_and_comments_are_not_kept(
    payload: dict[str, object],
) -> None:
    name = "issues" if "label" in payload else "issue_comment"
    assert may_be_repo_trigger(name, payload, own_login="agent-bot") is False
    assert may_be_repo_trigger(name, {**payload, "sender": {"login": "alice"}}, "agent-bot")
