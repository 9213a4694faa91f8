"""The agent's shell is confined (issue 10, item 2): Claude's Bash runs in Claude Code's
sandbox, a command agent under bubblewrap; without a working sandbox nothing runs.

The real CLI runs against the fake. A stand-in worker process holds the secrets in
its environment (what `/proc/<pid>/environ` would show), the worker's HOME a
`.git-credentials`, and a loopback HTTP server stands in for the emulator: the
agent's commands try all three, and to write outside the worktree.
"""

from __future__ import annotations

import http.server
import json
import os
import shlex
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent_workflow.agents import factory, sandbox
from agent_workflow.agents.claude import ClaudeAgent
from agent_workflow.agents.claude_tools import decide, policy_for
from agent_workflow.agents.command import CommandAgent, CommandConfig
from agent_workflow.config import load_settings
from agent_workflow.core.errors import ConfigError
from agent_workflow.core.model import Phase
from agent_workflow.core.ports import AgentRequest, Outcome
from agent_workflow.workspace import Workspace
from tests.agents.conftest import SESSION
from tests.support.fake_anthropic import FakeAnthropic, Script, call, say, steps

SECRETS = {
    "AW_GITHUB_TOKEN": "ghs_sandboxWorkerToken0123456789",
    "AW_WEBHOOK_SECRET": "sandbox-webhook-secret-8c2d1e",
    "AW_DATABASE_URL": "postgresql://u:pw-sandbox-db-5521@db.internal/aw",
}
CREDENTIAL_IN_FILE = "ghs_sandboxCredentialInGitCredentials"
LEAKS = [*SECRETS.values(), CREDENTIAL_IN_FILE]


@dataclass
class Target:
    """What the agent's commands go after, and where they try to write."""

    worker_home: Path
    worker_pid: int
    port: int
    hits: list[str]
    outside: list[Path]

    def attack(self) -> str:
        """A shell script trying every way out (bash: it uses /dev/tcp)."""
        home, pid, port = self.worker_home, self.worker_pid, self.port
        writes = "; ".join(f"echo pwned > {shlex.quote(str(p))}" for p in self.outside)
        return (
            "echo SNOOPED; env; cat /proc/*/environ | tr '\\0' '\\n' | grep -e AW_ -e TOKEN;"
            f" cat /proc/{pid}/environ; echo; cat {home}/.git-credentials;"
            f" curl -sS -m 3 http://127.0.0.1:{port}/curl;"
            f" (exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET /tcp HTTP/1.0\\r\\n\\r\\n' >&3"
            " && cat <&3);"
            f" {writes}"
        )


@pytest.fixture
def target(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Target]:
    """Secrets in a stand-in worker's environment and in the worker's HOME; a loopback
    server recording every request; paths outside the worktree to write to."""
    home = tmp_path / "worker-home"
    home.mkdir()
    (home / ".git-credentials").write_text(
        f"https://x-access-token:{CREDENTIAL_IN_FILE}@github.com\n"
    )
    monkeypatch.setenv("HOME", str(home))
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    worker = subprocess.Popen(["sleep", "300"], env={**os.environ, **SECRETS})
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"emulator says hello")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    outside = [tmp_path / "outside.txt", home / "planted", tmp_path / "ws" / "escaped"]
    try:
        yield Target(home, worker.pid, server.server_address[1], hits, outside)
    finally:
        server.shutdown()
        server.server_close()
        worker.kill()
        worker.wait()


def _everything_sent(fake: FakeAnthropic) -> str:
    return "\n".join(json.dumps([r.headers, r.body]) for r in fake.recorder.all())


def _tool_results(fake: FakeAnthropic) -> list[str]:
    return [r.content for c in fake.recorder.main(SESSION) for r in c.tool_results]


async def test_claude_deliver__bash_reaches_no_secret_no_network_and_writes_nothing_outside(
    fake: FakeAnthropic,
    make_agent: Callable[..., ClaudeAgent],
    make_request: Callable[..., AgentRequest],
    target: Target,
) -> None:
    escape = {
        "command": f"echo pwned > {shlex.quote(str(target.outside[0]))}; echo UNSANDBOXED",
        "description": "escape",
        "dangerouslyDisableSandbox": True,
    }
    fake.script = Script().main(
        steps(
            call("Bash", {"command": target.attack(), "description": "look around"}),
            call("Bash", escape),
            call("Write", {"file_path": "NOTES.md", "content": "notes\n"}),
            say("Done."),
        )
    )

    result = await make_agent().run(make_request(Phase.DELIVER))

    assert result.outcome is Outcome.SUCCESS, result.reason
    outputs = _tool_results(fake)
    assert any("SNOOPED" in o and "PATH=" in o for o in outputs)  # the commands did run
    sent = _everything_sent(fake)
    assert [leak for leak in LEAKS if leak in sent] == []
    assert "emulator says hello" not in sent
    assert target.hits == []
    assert [p for p in target.outside if p.exists()] == []


@pytest.fixture
def host_tmp_file() -> Iterator[Path]:
    """A path in the machine's own /tmp (removed afterwards, should a test write it)."""
    path = Path(f"/tmp/aw-sandbox-test-{uuid.uuid4().hex}")
    yield path
    path.unlink(missing_ok=True)


async def test_command_agent__reaches_no_secret_no_network_and_writes_nothing_outside(
    make_request: Callable[..., AgentRequest],
    workspace: Workspace,
    target: Target,
    host_tmp_file: Path,
) -> None:
    script = f"{target.attack()}; echo work > WORK.md; echo in-its-tmp > {host_tmp_file}"
    agent = CommandAgent(workspace, CommandConfig(f"bash -c {shlex.quote(script)}"))

    result = await agent.run(make_request(Phase.DELIVER))

    assert result.outcome is Outcome.SUCCESS, result.reason
    assert "SNOOPED" in result.text  # the commands did run
    assert "PATH=" in result.text
    assert [leak for leak in LEAKS if leak in result.text] == []
    assert "emulator says hello" not in result.text
    assert target.hits == []
    # Its /tmp was its own.
    assert [p for p in (*target.outside, host_tmp_file) if p.exists()] == []


# -- without a working sandbox ---------------------------------------------------------


@pytest.fixture
def path_without_bwrap(tmp_path: Path) -> str:
    """A PATH holding every program of this one but bubblewrap."""
    bin_dir = tmp_path / "bin-without-bwrap"
    bin_dir.mkdir()
    for entry in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(entry):
            continue
        for name in os.listdir(entry):
            link, program = bin_dir / name, os.path.join(entry, name)
            if name != "bwrap" and not link.exists() and os.access(program, os.X_OK):
                link.symlink_to(program)
    sandbox.unavailable.cache_clear()
    return str(bin_dir)


@pytest.mark.parametrize("sandboxed", [True, False])
async def test_claude_deliver__without_bwrap_is_blocked_unless_the_sandbox_is_off(
    sandboxed: bool,
    fake: FakeAnthropic,
    claude_env: dict[str, str],
    make_agent: Callable[..., ClaudeAgent],
    make_request: Callable[..., AgentRequest],
    path_without_bwrap: str,
) -> None:
    fake.script = Script().main(
        steps(call("Write", {"file_path": "NOTES.md", "content": "notes\n"}), say("Done."))
    )
    agent = make_agent(env={**claude_env, "PATH": path_without_bwrap}, sandbox=sandboxed)

    result = await agent.run(make_request(Phase.DELIVER))

    if sandboxed:
        assert result.outcome is Outcome.BLOCKED
        assert result.reason.startswith("sandbox unavailable (")
        assert "bwrap" in result.reason
        assert fake.recorder.all() == []  # the CLI never ran
    else:
        assert result.outcome is Outcome.SUCCESS, result.reason
        assert fake.recorder.main(SESSION)


async def test_claude_plan__needs_no_sandbox(
    fake: FakeAnthropic,
    claude_env: dict[str, str],
    make_agent: Callable[..., ClaudeAgent],
    make_request: Callable[..., AgentRequest],
    path_without_bwrap: str,
) -> None:
    fake.script = Script().main(say("1. Plan it."))
    agent = make_agent(env={**claude_env, "PATH": path_without_bwrap})

    result = await agent.run(make_request(Phase.PLAN))

    assert result.outcome is Outcome.SUCCESS, result.reason


@pytest.mark.parametrize("sandboxed", [True, False])
async def test_command_agent__without_bwrap_is_blocked_unless_the_sandbox_is_off(
    sandboxed: bool,
    make_request: Callable[..., AgentRequest],
    workspace: Workspace,
    path_without_bwrap: str,
    tmp_path: Path,
) -> None:
    ran = tmp_path / "ran"
    config = CommandConfig(
        f"touch {shlex.quote(str(ran))}", env={"PATH": path_without_bwrap}, sandbox=sandboxed
    )

    result = await CommandAgent(workspace, config).run(make_request(Phase.PLAN))

    if sandboxed:
        assert result.outcome is Outcome.BLOCKED
        assert result.reason.startswith("sandbox unavailable (")
        assert not ran.exists()
    else:
        assert result.outcome is Outcome.SUCCESS, result.reason
        assert ran.exists()


def test_probe__a_bwrap_that_cannot_make_namespaces_is_unavailable(tmp_path: Path) -> None:
    for name, body in (("bwrap", "echo no namespaces >&2; exit 1"), ("socat", "exit 0")):
        program = tmp_path / name
        program.write_text(f"#!/bin/sh\n{body}\n")
        program.chmod(0o755)
    sandbox.unavailable.cache_clear()

    assert sandbox.unavailable(str(tmp_path)) == "bwrap cannot create namespaces (exit 1)"
    assert sandbox.unavailable(str(tmp_path / "nothing")) == "bubblewrap (bwrap) not found"


# -- the settings ------------------------------------------------------------------------


def test_hook__refuses_a_bash_call_asking_to_leave_the_sandbox(tmp_path: Path) -> None:
    policy = policy_for(read_only=False, allow_shell=True)
    escape = {"command": "ls", "dangerouslyDisableSandbox": True}

    decision = decide(policy, tmp_path, "Bash", escape)["hookSpecificOutput"]
    assert decision["permissionDecision"] == "deny"
    plain = decide(policy, tmp_path, "Bash", {"command": "ls"})["hookSpecificOutput"]
    assert plain["permissionDecision"] == "allow"


def test_claude_settings__no_unsandboxed_escape_and_only_the_allowed_domains() -> None:
    settings = dict(sandbox.claude_settings(["pypi.org"]))

    assert settings["enabled"] is True
    assert settings["allowUnsandboxedCommands"] is False
    assert settings["excludedCommands"] == []
    assert settings["failIfUnavailable"] is True
    assert settings["network"] == {"allowedDomains": ["pypi.org"]}


def test_settings__sandbox_switch_and_domains_reach_the_agents(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AW_CONFIG_FILE", str(tmp_path / "none.toml"))
    on = factory.claude_agent(load_settings(agent_allowed_domains=" pypi.org, ,github.com"), None)
    assert on._config.sandbox is True
    assert on._config.allowed_domains == ("pypi.org", "github.com")
    off = factory.claude_agent(load_settings(agent_sandbox="off"), None)
    assert off._config.sandbox is False
    command = factory.command_agent(load_settings(agent="command", agent_command="true"))
    assert command._config.sandbox is True
    with pytest.raises(ConfigError, match="only supported for the Claude agent"):
        factory.command_agent(
            load_settings(agent="command", agent_command="true", agent_allowed_domains="x.org")
        )
    with pytest.raises(ConfigError, match="AGENT_SANDBOX"):
        load_settings(agent_sandbox="maybe")


def test_probe__runs_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.unavailable.cache_clear()
    runs: list[object] = []
    real_run = subprocess.run

    def counting(*args: object, **kwargs: object) -> object:
        runs.append(args)
        return real_run(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(subprocess, "run", counting)
    path = os.environ.get("PATH")

    assert [sandbox.unavailable(path) for _ in range(3)] == [None] * 3
    assert len(runs) == 1
