"""Structured logs (structlog) to stderr: readable on a terminal, JSON lines otherwise."""

from __future__ import annotations

import logging
import os
import sys

import structlog


def configure_logging(level: str | None = None, *, json: bool | None = None) -> None:
    """Set up structlog once per process. `AW_LOG_LEVEL`, `AW_LOG_JSON` override the defaults."""
    level = (level or os.environ.get("AW_LOG_LEVEL", "INFO")).upper()
    if json is None:
        json = os.environ.get("AW_LOG_JSON", "") == "1" or not sys.stderr.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
