"""One logging pipeline: structlog events and stdlib `logging` records come out alike.

Each case runs `configure_logging` in a real child process and reads its stderr.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from typing import Any

import pytest

# Emits, after `configure_logging`: a structlog event, records of our stdlib
# loggers (the embedded queue, the forge's HTTP loop), a third-party logger
# (uvicorn, as `aw serve` configures it), an exception, a warning, a filtered
# debug event and bullmq's traceback printing.
CHILD = textwrap.dedent(
    """
    import asyncio, logging, sys, warnings
    import structlog
    import uvicorn
    from agent_workflow.logs import configure_logging
    import agent_workflow.queue.bullmq_backend  # routes bullmq's printed tracebacks
    import bullmq.utils

    configure_logging({level!r}, json={json!r})
    structlog.get_logger("agent_workflow.service.worker").info("worker.started", concurrency=4)
    logging.getLogger("agent_workflow.queue.embedded").warning("job %s failed", "j1")
    logging.getLogger("agent_workflow.forge.http").info("github answered %d", 200)
    structlog.get_logger("agent_workflow.core.runner").debug("too.detailed")
    uvicorn.Config(lambda *a: None, log_config=None, log_level="warning")
    logging.getLogger("uvicorn.error").error("uvicorn says %s", "hi")
    logging.getLogger("httpx").info("HTTP Request: GET https://example.invalid")
    try:
        1 / 0
    except ZeroDivisionError:
        logging.getLogger("agent_workflow.queue.embedded").exception("job %s crashed", "j2")
    warnings.warn("careful", UserWarning)

    class Failed:
        def result(self):
            raise ValueError("lost connection")

    bullmq.utils.extract_result(Failed(), lambda *a: None)
    """
)

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# structlog's ConsoleRenderer: `<iso time> [<level>] <event> <key=value...> [<logger>]`.
CONSOLE = re.compile(r"^\S+Z \[(?P<level>\w+)\s*\] .*\[(?P<logger>[\w.]+)\]")


def run_child(level: str = "INFO", *, json_lines: bool = True) -> list[str]:
    """Run CHILD; return its stderr lines (stdout must stay empty)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AW_LOG")}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD.format(level=level, json=json_lines)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    return [line for line in proc.stderr.splitlines() if line.strip()]


def parse(lines: list[str]) -> list[dict[str, Any]]:
    """Every line must be one JSON object: nothing printed in a second format."""
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(
                f"a stderr line that is not a JSON log record: {line!r}\n" + "\n".join(lines)
            )
    return records


def test_structlog_and_stdlib_records_are_rendered_alike() -> None:
    records = parse(run_child())
    by_event = {r["event"]: r for r in records}

    ours = by_event["worker.started"]
    stdlib = by_event["job j1 failed"]
    assert ours["concurrency"] == 4
    for record, logger, level in (
        (ours, "agent_workflow.service.worker", "info"),
        (stdlib, "agent_workflow.queue.embedded", "warning"),
        (by_event["github answered 200"], "agent_workflow.forge.http", "info"),
        (by_event["uvicorn says hi"], "uvicorn.error", "error"),
    ):
        assert record["logger"] == logger
        assert record["level"] == level
        assert record["timestamp"].endswith("Z")
    assert set(ours) - {"concurrency"} == set(stdlib)  # the same keys, same renderer

    crashed = by_event["job j2 crashed"]
    assert crashed["level"] == "error"
    assert "ZeroDivisionError" in crashed["exception"]
    assert any(r["logger"] == "py.warnings" and "careful" in r["event"] for r in records)
    bullmq = [r for r in records if r["logger"] == "bullmq"]
    assert len(bullmq) == 1
    assert "lost connection" in bullmq[0]["exception"]

    assert "too.detailed" not in by_event  # below the level
    assert not any(r["logger"] == "httpx" for r in records)  # per-request chatter: DEBUG only


def test_debug_level_shows_everything() -> None:
    events = {r["event"] for r in parse(run_child("DEBUG"))}
    assert {"too.detailed", "HTTP Request: GET https://example.invalid"} <= events


def test_console_format_is_shared_too() -> None:
    lines = [ANSI.sub("", line) for line in run_child(json_lines=False)]
    ours = next(CONSOLE.match(line) for line in lines if "worker.started" in line)
    stdlib = next(CONSOLE.match(line) for line in lines if "job j1 failed" in line)
    assert ours is not None
    assert stdlib is not None
    assert ours.group("level", "logger") == ("info", "agent_workflow.service.worker")
    assert stdlib.group("level", "logger") == ("warning", "agent_workflow.queue.embedded")
    assert "Traceback" in "\n".join(lines)  # the exception, rendered by structlog
