"""`aw demo --json`, run as a user would: a subprocess whose summary is read from stdout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.acceptance.system import clean_environ
from tests.aw_cli import run_aw

pytestmark = pytest.mark.slow

DEMO_DEADLINE_S = 100.0


async def test_aw_demo_json__no_duplicates_all_complete(tmp_path: Path) -> None:
    """Window: the whole offline lifecycle with its built-in faults (a redelivered webhook,
    an untrusted `/approve`, a blocked-then-retried plan, a SIGKILL of `aw serve` mid-deliver),
    and, before the first PR is merged, a `changes_requested` review with two line comments
    (its webhook redelivered) and failing checks on the review round's commit.

    The demo's own verdict must be clean: exit 0, `"duplicates": 0` (effects, rounds and
    replies), `"all_complete": true`; the first issue had exactly one review round (one
    reply per thread) and then one CI repair round for the review round's commit.
    """
    env = {
        **clean_environ(),
        "AW_CONFIG_FILE": str(tmp_path / "no-such-config.toml"),
        "TMPDIR": str(tmp_path),  # the demo's work directory (mkdtemp) goes there
    }
    code, out, stderr = await run_aw(
        "demo", "--json", cwd=tmp_path, env=env, deadline_s=DEMO_DEADLINE_S
    )
    assert code == 0, f"aw demo exited {code}\n{stderr[-3000:]}"
    summary = json.loads(out)
    assert summary["duplicates"] == 0, summary
    assert summary["all_complete"] is True, summary
    assert summary["kills"] >= 1, "the demo did not kill its server"
    first, second = summary["issues"]
    revise, repair = first["rounds"]
    assert (revise["phase"], revise["number"], revise["threads"]) == ("revise", 1, 2), first
    assert revise["trigger"].startswith("review:")
    assert revise["replies"] == 2, first
    assert first["replies"] == 2, first
    assert (repair["phase"], repair["number"], repair["failing_checks"]) == ("repair", 1, ["tests"])
    assert repair["trigger"].startswith(f"checks:{revise['pushed']}"), first
    assert repair["pushed"]
    assert repair["pushed"] != revise["pushed"]
    assert first["phases"]["revise"] == first["phases"]["repair"] == "complete", first
    # A summary per round (more comments, e.g. progress, may come; duplicates are counted above).
    assert first["pr_bot_comments"] >= 2, "one summary comment per round on the PR"
    assert second["rounds"] == []
    assert second["replies"] == 0
    assert summary["duplicate_deliveries_sent"] >= 3, "the review's webhook was not redelivered"
