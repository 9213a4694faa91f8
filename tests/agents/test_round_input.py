"""A round's input in the prompt (bounded, delimited) and the agent's replies read back."""

from __future__ import annotations

from agent_workflow.agents import round_input
from agent_workflow.core.model import RoundTrigger
from agent_workflow.core.ports import CheckRun, ReviewComment, RoundWork


def test_replies__each_section_by_comment_id_and_the_summary() -> None:
    text = (
        "Some preamble.\n\n### Reply to 11\nRenamed the helper.\n\n"
        "### Reply to #12\nKept it: the caller needs the old name.\nSecond line.\n\n"
        "### Summary\nRenamed one helper, kept another.\n"
    )
    summary, replies = round_input.replies(text)
    assert summary == "Renamed one helper, kept another."
    assert replies == {
        "reply:11": "Renamed the helper.",
        "reply:12": "Kept it: the caller needs the old name.\nSecond line.",
    }


def test_replies__without_sections_the_text_is_the_summary() -> None:
    assert round_input.replies("Fixed the failing test.") == ("Fixed the failing test.", {})


def test_render__comments_with_their_place_and_hunk_and_bounded_checks() -> None:
    work = RoundWork(
        RoundTrigger("review:5", review_id=5, instruction="Please tidy up."),
        comments=(
            ReviewComment(11, "Rename this", "rev", "src/a.py", 3, "@@ -1 +1 @@\n-x\n+y"),
            ReviewComment(12, "reply in thread", "rev", "src/a.py", 3, "", in_reply_to_id=11),
        ),
        checks=(
            CheckRun(1, "tests", "completed", "failure", "2 failed", "", "x" * 10_000, ("a:1: E",)),
        ),
    )
    text = round_input.render(work)
    assert '<comment id="11" at="src/a.py:3" by="rev">' in text
    assert "reply in thread" not in text  # replies are not threads to answer
    assert "<diff_hunk>" in text
    assert "Please tidy up." in text
    assert "annotation: a:1: E" in text
    assert len(text) < 8_000  # the 10,000-character log is cut
