"""A GitHub emulator: a real HTTP server speaking the REST subset the adapter uses.

Start one with `EmulatorServer` (tests) or `main` (the `aw emulator` command);
drive it with `EmulatorAdmin`. Faults, counters and webhooks are described in
`faults`, `core` and `webhooks`.
"""

from github_emulator.client import (
    Acted,
    CheckRunView,
    ChecksCompleted,
    CommentView,
    Counters,
    DeliveryInfo,
    EmulatorAdmin,
    EmulatorAdminError,
    IssueView,
    PullView,
    Pushed,
    ReviewCommentView,
    Reviewed,
    ReviewView,
)
from github_emulator.core import Emulator, EmulatorConfig
from github_emulator.faults import FaultKind
from github_emulator.server import EmulatorServer, main, serve_app
from github_emulator.webhooks import Signature, sign

__all__ = [
    "Acted",
    "CheckRunView",
    "ChecksCompleted",
    "CommentView",
    "Counters",
    "DeliveryInfo",
    "Emulator",
    "EmulatorAdmin",
    "EmulatorAdminError",
    "EmulatorConfig",
    "EmulatorServer",
    "FaultKind",
    "IssueView",
    "PullView",
    "Pushed",
    "ReviewCommentView",
    "ReviewView",
    "Reviewed",
    "Signature",
    "main",
    "serve_app",
    "sign",
]
