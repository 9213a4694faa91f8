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


def test_transcripts__restore_brings_the_longer_store_copy_to_disk(tmp_path: Path) -> None:
    """A takeover's disk gets the database's transcript unless its own is as long."""
    config, sid = tmp_path / "claude", "0b8f2c1e-5d4a-4e3b-9c2d-1a0f9e8d7c6b"
    stored = [
        {"uuid": "1", "message": {"content": "hi \ud800"}, "type": "user"},
        {"uuid": "2", "type": "assistant", "message": {"content": "ok"}},
    ]
    written = transcripts.restore(config, "-srv-ws-b", sid, stored)
    assert written == config / "projects" / "-srv-ws-b" / f"{sid}.jsonl"
    assert transcripts.resumable_transcript(config, sid) == written
    lines = written.read_text().splitlines()
    assert [json.loads(x) for x in lines] == stored
    assert all(x.startswith('{"type":') for x in lines)  # as the CLI writes its lines
    assert transcripts.restore(config, "-srv-ws-b", sid, stored[:1]) is None  # disk is longer
    longer = [*stored, {"uuid": "3", "type": "user", "message": {"content": "more"}}]
    assert transcripts.restore(config, "other-key", sid, longer) == written  # replaced in place
    assert transcripts.line_count(written) == 3
