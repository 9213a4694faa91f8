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
    an untrusted `/approve`, a blocked-then-retried plan, a SIGKILL of `aw serve` mid-deliver).

    The demo's own verdict must be clean: exit 0, `"duplicates": 0`, `"all_complete": true`.
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
