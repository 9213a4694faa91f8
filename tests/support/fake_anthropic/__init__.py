"""A fake Anthropic Messages API for running the real Claude Code CLI offline.

Typical use::

    script = Script().main(steps(call("Write", {...}), say("done")))
    async with FakeAnthropic(script) as fake:
        env = fake.cli_env(tmp_path / "claude")   # ANTHROPIC_BASE_URL, CLAUDE_CONFIG_DIR, ...
        ...run the CLI with env...
    fake.recorder.main(session_id)                # what the agent's conversation sent
"""

from tests.support.fake_anthropic.conversation import Conversation, ToolResult
from tests.support.fake_anthropic.recorder import RecordedRequest, Recorder
from tests.support.fake_anthropic.script import (
    ApiError,
    Reply,
    Responder,
    Script,
    ToolUse,
    all_of,
    call,
    first_time,
    mentions,
    replies_from,
    say,
    steps,
)
from tests.support.fake_anthropic.server import QUIET_CLI_ENV, FakeAnthropic

__all__ = [
    "QUIET_CLI_ENV",
    "ApiError",
    "Conversation",
    "FakeAnthropic",
    "RecordedRequest",
    "Recorder",
    "Reply",
    "Responder",
    "Script",
    "ToolResult",
    "ToolUse",
    "all_of",
    "call",
    "first_time",
    "mentions",
    "replies_from",
    "say",
    "steps",
]
