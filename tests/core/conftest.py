"""The `world` fixture: the GitHub a router scenario runs against (see `worlds.py`).

Parametrised over the recording twin (`memory`) and the REST adapter against the
GitHub emulator (`emulator`); with the `store` fixture, every scenario runs four ways.
A scenario that only makes sense on one side narrows it with
`@pytest.mark.parametrize("world", ["emulator"], indirect=True)`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.core.worlds import World, open_world


@pytest.fixture(params=["memory", "emulator"])
async def world(request: pytest.FixtureRequest) -> AsyncIterator[World]:
    """A GitHub with one open issue (`world.issue`) by the trusted user."""
    async with open_world(request.param) as opened:
        yield opened
