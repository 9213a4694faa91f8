"""The acceptance suite's fixtures (emulator, `aw` processes, PostgreSQL, BullMQ), for the
one test here that starts real `aw serve` and `aw worker` processes."""

from tests.acceptance.conftest import (  # noqa: F401 - fixtures, found by name
    bull,
    distributed,
    emulator,
    pg_url,
    procs,
    serve_port,
    serve_url,
    timing,
)
