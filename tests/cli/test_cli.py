"""The `aw` command line as a user meets it: a real subprocess each time."""

from __future__ import annotations

import json
import os
from pathlib import Path

from agent_workflow.core.model import Intent
from agent_workflow.store import connect
from agent_workflow.testing.agent import ScriptedAgent
from agent_workflow.testing.forge import MemoryForge
from tests.aw_cli import run_aw
from tests.conftest import FakeClock
from tests.core.helpers import make_core
from tests.support.events import event


async def aw(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    return await run_aw(*args, env={**os.environ, **env})


async def test_status__json_lists_tasks_phases_and_effects(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'aw.db'}"
    store = await connect(url)
    core = make_core(store, FakeClock(), forge=MemoryForge(), agent=ScriptedAgent())
    await core.router.route(event(Intent.START_PLAN, issue=3))
    await store.close()

    code, out, err = await aw("status", "--json", env={"AW_DATABASE_URL": url})

    assert code == 0, err
    [task] = json.loads(out)
    assert task["issue"] == 3
    assert [p["status"] for p in task["phases"]] == ["complete"]
    assert task["effects_done"] == 2
    assert task["effects_outstanding"] == []


async def test_db_upgrade__creates_the_schema(tmp_path: Path) -> None:
    code, out, _ = await aw(
        "db", "upgrade", env={"AW_DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}"}
    )
    assert code == 0
    assert "up to date" in out


async def test_bad_config__one_line_and_exit_2(tmp_path: Path) -> None:
    code, out, err = await aw("status", env={"AW_DATABASE_URL": "mysql://nope"})
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "configuration error" in err
    assert "Traceback" not in err + out


async def test_bad_trigger__one_line_and_exit_2(tmp_path: Path) -> None:
    """Two triggers spelled alike would leave one dead: refused at start, naming both."""
    code, out, err = await aw(
        "status",
        env={
            "AW_DATABASE_URL": f"sqlite:///{tmp_path / 'aw.db'}",
            "AW_PLAN_LABEL": "robot",
            "AW_APPROVE_LABEL": "Robot",
        },
    )
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "AW_PLAN_LABEL and AW_APPROVE_LABEL must differ" in err
    assert "Traceback" not in err + out


async def test_status__shows_dead_lettered_deliveries_with_their_last_error(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'aw.db'}"
    store = await connect(url)
    poisoned = event(Intent.START_PLAN, issue=4)
    assert await store.deliveries.record(
        delivery_id="dead-1",
        hook_id="42",
        event="issues",
        action="labeled",
        payload={},
        parsed=poisoned,
        now=1.0,
    )
    for _ in range(2):
        await store.deliveries.note_failure(
            "dead-1", "42", "RuntimeError('always')", now=2.0, max_attempts=2
        )
    await store.close()

    code, out, err = await aw("status", env={"AW_DATABASE_URL": url, "COLUMNS": "200"})

    assert code == 0, err
    assert "dead-lettered deliveries: 1" in out
    assert "dead-1" in out
    assert "RuntimeError('always')" in out
