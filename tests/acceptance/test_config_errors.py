"""Bad configuration: one line on stderr and exit code 2, never a traceback (README, DESIGN §7).

Each case starts from a configuration that works and breaks exactly one thing.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent_workflow.demo.process import free_port
from tests.acceptance.system import clean_environ
from tests.aw_cli import run_aw
from tests.conftest import PG_ADMIN_URL

pytestmark = pytest.mark.slow

EXIT_DEADLINE_S = 30.0
PG_BASE = PG_ADMIN_URL.rpartition("/")[0]  # postgresql://postgres@127.0.0.1:5432


@dataclass(frozen=True)
class Case:
    """One broken setting: the command, what to change, and a word the error line must name."""

    command: str
    set: dict[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    names: str = ""


CASES = {
    "worker-redis-unreachable": Case(
        "worker", {"AW_REDIS_URL": "redis://127.0.0.1:1/0"}, names="Redis"
    ),
    "serve-without-webhook-secret": Case(
        "serve", unset=("AW_WEBHOOK_SECRET",), names="AW_WEBHOOK_SECRET"
    ),
    "serve-postgres-unreachable": Case(
        "serve", {"AW_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/aw"}, names="database"
    ),
    "serve-github-api-url-not-a-url": Case(
        "serve", {"AW_GITHUB_API_URL": "not-a-url"}, names="AW_GITHUB_API_URL"
    ),
    # The server answers but refuses the connection: still a configuration mistake.
    "serve-postgres-database-missing": Case(
        "serve", {"AW_DATABASE_URL": f"{PG_BASE}/aw_no_such_database"}, names="database"
    ),
    "serve-postgres-role-missing": Case(
        "serve",
        {"AW_DATABASE_URL": PG_BASE.replace("postgres@", "aw_no_such_role@") + "/postgres"},
        names="database",
    ),
    "serve-sqlite-directory-missing": Case(
        "serve", {"AW_DATABASE_URL": "sqlite:////nonexistent-aw-dir/aw.db"}, names="database"
    ),
    "serve-port-in-use": Case("serve", {"AW_PORT": "{busy_port}"}, names="AW_PORT"),
}


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port something else is already listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _valid_env(tmp_path: Path) -> dict[str, str]:
    """A configuration `aw serve` and `aw worker` would start with (embedded, SQLite)."""
    return {
        **clean_environ(),
        "AW_CONFIG_FILE": str(tmp_path / "no-such-config.toml"),
        "AW_DATABASE_URL": f"sqlite:///{tmp_path / 'aw.db'}",
        "AW_GITHUB_API_URL": "http://127.0.0.1:9",  # never called at start-up
        "AW_GITHUB_TOKEN": "token",
        "AW_WEBHOOK_SECRET": "secret",
        "AW_AGENT": "scripted",
        "AW_PORT": str(free_port()),
        "AW_WORKSPACE_DIR": str(tmp_path / "workspaces"),
        "AW_LOG_JSON": "1",
    }


def _is_log_record(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


@pytest.mark.parametrize("name", list(CASES))
async def test_bad_configuration__one_line_exit_2(
    name: str, tmp_path: Path, busy_port: int
) -> None:
    """Window: start-up with one setting wrong, before any state changes.

    The operator gets one line naming the problem and exit code 2 — not a
    traceback, not a process that hangs retrying (a 30 s deadline), not exit 1.
    JSON log records printed before the error are allowed.
    """
    case = CASES[name]
    env = _valid_env(tmp_path)
    env.update({k: v.format(busy_port=busy_port) for k, v in case.set.items()})
    for key in case.unset:
        env.pop(key, None)
    code, out, stderr = await run_aw(
        case.command, cwd=tmp_path, env=env, deadline_s=EXIT_DEADLINE_S
    )
    lines = [line for line in stderr.splitlines() if line.strip() and not _is_log_record(line)]
    problems = []
    if code != 2:
        problems.append(f"exit code {code}, expected 2")
    if "Traceback" in stderr:
        problems.append("a traceback on stderr")
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr besides log records, expected 1")
    elif not lines[0].startswith("aw: configuration error: ") or case.names not in lines[0]:
        problems.append(f"the line does not name {case.names}: {lines[0]!r}")
    if out.strip():
        problems.append(f"unexpected stdout {out[:300]!r}")
    assert not problems, (
        f"aw {case.command} ({name}): {'; '.join(problems)}\n"
        f"stderr (first and last lines):\n{_ends(stderr)}"
    )


def _ends(text: str, n: int = 6) -> str:
    lines = text.splitlines()
    if len(lines) <= 2 * n:
        return text
    return "\n".join([*lines[:n], f"... ({len(lines) - 2 * n} lines) ...", *lines[-n:]])
