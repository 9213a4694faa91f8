"""A round's input as prompt text, and the agent's per-thread replies read back.

The review's comments and the failing checks come from GitHub: text written by
reviewers and by the repository's CI. They go into the prompt between delimiters
(like the repository's guidance), cut to bounded sizes. The agent answers each
review comment under `### Reply to <id>`; `replies` reads those sections back into
artifacts (`reply:<id>`) and leaves the `### Summary` (or the rest) as the text.
"""

from __future__ import annotations

import re

from agent_workflow.core.ports import RoundWork

# Bounds on what one round puts in the prompt: enough to act on, never a whole log.
MAX_COMMENT_CHARS = 4_000
MAX_HUNK_CHARS = 2_000
MAX_CHECK_TEXT_CHARS = 6_000
MAX_ANNOTATIONS = 20
_REPLY = re.compile(r"^#{2,4}\s*Reply to #?(\d+)\s*$", re.MULTILINE | re.IGNORECASE)
_SUMMARY = re.compile(r"^#{2,4}\s*Summary\s*$", re.MULTILINE | re.IGNORECASE)


def _cut(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "\n[... cut ...]"


def render(work: RoundWork) -> str:
    """The round's input for the prompt."""
    parts: list[str] = []
    if work.trigger.instruction:
        parts += ["<request>", _cut(work.trigger.instruction, MAX_COMMENT_CHARS), "</request>"]
    for c in work.threads:
        where = f"{c.path}:{c.line}" if c.path and c.line else c.path or "the pull request"
        parts += [
            f'<comment id="{c.id}" at="{where}" by="{c.author}">',
            _cut(c.body, MAX_COMMENT_CHARS),
        ]
        if c.diff_hunk:
            parts += ["<diff_hunk>", _cut(c.diff_hunk, MAX_HUNK_CHARS), "</diff_hunk>"]
        parts.append("</comment>")
    if work.trigger.thread_id is not None and not work.threads:
        parts.append(f"(Reply to comment {work.trigger.thread_id}: it asked for this round.)")
    for check in work.checks:
        parts += [f'<check name="{check.name}" conclusion="{check.conclusion}">']
        for label, value in (("title", check.title), ("summary", check.summary)):
            if value.strip():
                parts.append(f"{label}: {_cut(value, MAX_COMMENT_CHARS)}")
        for note in check.annotations[:MAX_ANNOTATIONS]:
            parts.append(f"annotation: {_cut(note, 500)}")
        if check.text.strip():
            parts += ["<output>", _cut(check.text, MAX_CHECK_TEXT_CHARS), "</output>"]
        parts.append("</check>")
    return "\n".join(parts) if parts else "(no details were given)"


def replies(text: str) -> tuple[str, dict[str, str]]:
    """Split the agent's final message into its summary and its replies by comment id."""
    found: dict[str, str] = {}
    marks = list(_REPLY.finditer(text))
    summary = _SUMMARY.search(text)
    ends = sorted([m.start() for m in marks] + ([summary.start()] if summary else []) + [len(text)])
    for mark in marks:
        end = next(e for e in ends if e > mark.start())
        reply = text[mark.end() : end].strip()
        if reply:
            found[f"reply:{mark.group(1)}"] = reply
    if summary is not None:
        end = next(e for e in ends if e > summary.start())
        rest = text[summary.end() : end].strip()
    else:
        rest = text[: marks[0].start()].strip() if marks else text.strip()
    return rest, found
