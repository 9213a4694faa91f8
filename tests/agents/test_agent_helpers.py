"""Small pieces: the BLOCKED convention, prompt rendering, compound names, transcripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent_workflow.agents import compound, prompts, transcripts
from agent_workflow.agents.blocked import blocked_reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("BLOCKED: no access to the database\n\nDetails.", "no access to the database"),
        ("\n  **BLOCKED:** unclear issue", "unclear issue"),
        ("blocked: lower case counts", "lower case counts"),
        ("BLOCKED:", "the agent said it is blocked without giving a reason"),
        ("Here is the plan.\nBLOCKED: not on the first line", None),
        ("", None),
    ],
)
def test_blocked__first_line_only(text: str, reason: str | None) -> None:
    assert blocked_reason(text) == reason


def test_prompts__values_are_inserted_once_and_never_expanded() -> None:
    template = "Issue #${issue_number}: ${title}\n${body}\n${unknown}"
    out = prompts.render(template, {"issue_number": "7", "title": "$body", "body": "${title} {x}"})
    assert out == "Issue #7: $body\n${title} {x}\n${unknown}"


def test_prompts__every_default_template_exists_and_mentions_blocked() -> None:
    for name in ("plan", "deliver", "compound", "resume"):
        assert "BLOCKED: <" in prompts.default_template(name)
    assert prompts.override_path("plan") == ".agent-workflow/prompts/plan.md"


def test_compound__slug_and_pointer(tmp_path: Path) -> None:
    assert (
        compound.solution_slug(7, "Fix: the *parser* crashes!") == "issue-7-fix-the-parser-crashes"
    )
    assert compound.solution_slug(8, "!!!") == "issue-8"
    assert len(compound.solution_slug(9, "word " * 50)) <= len("issue-9-") + 48

    assert compound.ensure_pointer(tmp_path)
    assert "docs/solutions/" in (tmp_path / "CLAUDE.md").read_text()
    assert not compound.ensure_pointer(tmp_path)  # already there


def test_transcripts__resumable_prior_cost_and_set_aside(tmp_path: Path) -> None:
    sid = "11111111-2222-4333-8444-555555555555"
    project = tmp_path / "projects" / "-some-cwd"
    project.mkdir(parents=True)
    file = project / f"{sid}.jsonl"
    entries = [
        {"type": "user", "message": {"content": "hi"}},
        {"type": "cost-state", "totalCostUSD": 0.25},
        {"type": "cost-state", "totalCostUSD": 0.5},
    ]
    file.write_text("\n".join(json.dumps(e) for e in entries) + "\n{truncated")

    assert transcripts.resumable_transcript(tmp_path, sid) == file
    assert transcripts.prior_cost(file) == 0.5

    file.write_text(json.dumps({"type": "queue-operation"}) + "\n")
    assert transcripts.resumable_transcript(tmp_path, sid) is None  # nothing to resume...
    assert transcripts.find_transcript(tmp_path, sid) is None  # ...and set aside
    assert len(list(project.iterdir())) == 1


def test_transcripts__config_dir_follows_the_cli_rules(tmp_path: Path) -> None:
    assert transcripts.config_dir({"CLAUDE_CONFIG_DIR": str(tmp_path)}) == tmp_path
    home = tmp_path / "home"
    assert transcripts.config_dir({"HOME": str(home), "CLAUDE_CONFIG_DIR": ""}) == home / ".claude"
