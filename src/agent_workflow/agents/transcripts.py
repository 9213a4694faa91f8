"""Where the Claude Code CLI keeps session transcripts, and whether one can be resumed.

The CLI writes `<config dir>/projects/<sanitised cwd>/<session id>.jsonl`, where
the config dir is `$CLAUDE_CONFIG_DIR`, else `$HOME/.claude`. The file appears
with the first answer of the model (a run killed before it leaves nothing).
`--resume` finds a session in any project directory, but `--session-id`
refuses an id only when it exists under the *current* directory's project,
so "does a transcript exist" is answered by looking in all of them.

With a session store (the database), the transcript of another machine's worker is
first written here from the store (`restore`), so the same look finds it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# Transcript line types that carry the conversation (the rest is CLI bookkeeping).
_CONVERSATION_TYPES = {"user", "assistant"}


def config_dir(env: Mapping[str, str]) -> Path:
    """The CLI's config directory for a CLI started with `env` over this process's environment."""
    merged = {**os.environ, **env}
    if merged.get("CLAUDE_CONFIG_DIR"):
        return Path(merged["CLAUDE_CONFIG_DIR"])
    home = merged.get("HOME") or str(Path.home())
    return Path(home) / ".claude"


def find_transcript(config: Path, session_id: str) -> Path | None:
    """The transcript file of `session_id` in any project directory, or None."""
    projects = config / "projects"
    if not projects.is_dir():
        return None
    for candidate in sorted(projects.glob(f"*/{session_id}.jsonl")):
        if candidate.is_file():
            return candidate
    return None


def has_conversation(transcript: Path) -> bool:
    """True when the transcript holds at least one user or assistant message."""
    try:
        with transcript.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a kill
                if isinstance(entry, dict) and entry.get("type") in _CONVERSATION_TYPES:
                    return True
    except FileNotFoundError:
        return False
    return False


def prior_cost(transcript: Path) -> float:
    """The session cost recorded in the transcript (its last `cost-state` entry), else 0.

    A resumed CLI starts its `total_cost_usd` from this figure, so it is what
    to subtract to learn what the resumed run itself spent. A run that was
    killed records no cost-state: its spending is not in the figure.
    """
    cost = 0.0
    try:
        with transcript.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if '"cost-state"' not in line:
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                value = entry.get("totalCostUSD") if isinstance(entry, dict) else None
                if isinstance(value, int | float):
                    cost = float(value)
    except FileNotFoundError:
        return 0.0
    return cost


def set_aside(transcript: Path) -> Path:
    """Rename a transcript that cannot be resumed, so the id can start fresh; returns the new path."""
    target = transcript.with_name(f"{transcript.name}.unusable-{int(time.time())}")
    transcript.rename(target)
    return target


def resumable_transcript(config: Path, session_id: str) -> Path | None:
    """The transcript to resume, or None to start fresh.

    A transcript without any conversation (cut off before the first message
    was written) is set aside: it cannot be resumed, and left in place it
    would make the CLI refuse to start the id fresh.
    """
    found = find_transcript(config, session_id)
    if found is None:
        return None
    if has_conversation(found):
        return found
    set_aside(found)
    return None


def line_count(transcript: Path) -> int:
    """How many lines the transcript has (a line cut short by a kill counts too)."""
    try:
        with transcript.open("rb") as lines:
            return sum(1 for _ in lines)
    except FileNotFoundError:
        return 0


def restore(
    config: Path, project_key: str, session_id: str, entries: Sequence[Mapping[str, object]]
) -> Path | None:
    """Write a session's mirrored `entries` (from the database) as its transcript on disk,
    unless the disk already has at least as many lines; returns the path written, or None.

    The lines replace an older local copy in place (written aside, then renamed over), so
    a takeover resumes the longest known conversation wherever it ran. `type` comes first
    on each line, as the CLI writes it (the store may reorder keys).
    """
    local = find_transcript(config, session_id)
    if local is not None and line_count(local) >= len(entries):
        return None
    target = local or config / "projects" / project_key / f"{session_id}.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.restoring-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as out:
        for entry in entries:
            line = {"type": entry["type"], **entry} if "type" in entry else dict(entry)
            out.write(json.dumps(line, separators=(",", ":")) + "\n")
    tmp.chmod(0o600)
    os.replace(tmp, target)
    return target
