"""The runners: `main()` as a real process (the `aw emulator` command) and the threaded server."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx

from github_emulator import EmulatorServer
from tests.forge.helpers import REPO, TOKEN

MAIN = f"from github_emulator import main; main(port=0, token={TOKEN!r}, repos=[{REPO!r}])"


def _read_url(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("emulator listening on "), line
    return line.removeprefix("emulator listening on ").strip()


def test_main__serves_until_sigterm() -> None:
    process = subprocess.Popen([sys.executable, "-c", MAIN], stdout=subprocess.PIPE, text=True)
    try:
        url = _read_url(process)
        headers = {"authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=url, headers=headers, timeout=5) as api:
            response = api.get(f"/repos/{REPO}")
        assert response.status_code == 200
        assert response.json()["url"].startswith(url)  # URLs point back at the emulator
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


async def test_thread_mode__answers_while_the_callers_loop_is_blocked() -> None:
    """A test that blocks its own event loop (a zombie worker) still has a live GitHub."""
    async with EmulatorServer(token=TOKEN, thread=True) as emu:
        await emu.admin.create_repo(REPO)
        started = time.monotonic()
        # Synchronous client: this loop is blocked for the duration of the call.
        with httpx.Client(base_url=emu.url, timeout=5) as api:
            auth = {"authorization": f"Bearer {TOKEN}"}
            response = api.get(f"/repos/{REPO}", headers=auth)  # noqa: ASYNC212 - on purpose
        assert response.status_code == 200
        assert time.monotonic() - started < 5
