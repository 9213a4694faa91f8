"""Structured logs (structlog) to stderr: readable on a terminal, JSON lines otherwise.

One pipeline, one format: standard `logging` records (our queue and forge modules,
third-party loggers such as uvicorn's) go to the root handler, whose
`structlog.stdlib.ProcessorFormatter` runs them through the same processors and
renderer as structlog's own events — the same keys (`event`, `level`, `logger`,
`timestamp`). structlog's events skip the `logging` machinery (a LogRecord, handler
locks: a third of a duplicate job's cost) and are written to stderr directly.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Final

import structlog

from agent_workflow.core.errors import ConfigError

QUIET_LOGGERS: Final = ("httpx", "httpcore")
"""Third-party loggers that log every request at INFO: shown at DEBUG, else from WARNING."""


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler `configure_logging` installs (its own type: replaced, never doubled)."""


class _NamedWriter(structlog.WriteLogger):
    """structlog's direct writer, carrying the logger's name for `add_logger_name`."""

    def __init__(self, name: str) -> None:
        super().__init__(sys.stderr)
        self.name = name


def _writer(*args: object) -> _NamedWriter:
    return _NamedWriter(str(args[0]) if args else "")


def configure_logging(level: str | None = None, *, json: bool | None = None) -> None:
    """Set up logging for this process. `AW_LOG_LEVEL`, `AW_LOG_JSON` override the defaults.

    Calling it again replaces the previous set-up (other handlers on the root
    logger, such as pytest's, are left alone).
    """
    level = (level or os.environ.get("AW_LOG_LEVEL", "INFO")).upper()
    numeric = logging.getLevelName(level)
    if not isinstance(numeric, int):
        raise ConfigError(f"AW_LOG_LEVEL: unknown log level {level!r}")
    if json is None:
        json = os.environ.get("AW_LOG_JSON", "") == "1" or not sys.stderr.isatty()
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
    ]
    rendering: list[structlog.typing.Processor] = (
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
        if json
        else [structlog.dev.ConsoleRenderer()]  # renders exc_info itself
    )
    structlog.configure(
        processors=[*shared, *rendering],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_writer,
        cache_logger_on_first_use=True,
    )
    handler = _Handler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(numeric)
    logging.captureWarnings(True)  # `warnings` too, as records of the `py.warnings` logger
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(
            logging.DEBUG if numeric <= logging.DEBUG else logging.WARNING
        )
