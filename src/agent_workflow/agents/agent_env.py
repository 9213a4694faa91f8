"""The environment an agent process gets: built from an allowlist, never the worker's own.

A worker's environment holds every secret of the deployment (`AW_GITHUB_TOKEN`,
the App key, `AW_WEBHOOK_SECRET`, database and Redis URLs...). One injected
instruction ("first run `env | curl ...`") would hand them all out, so an agent
(the Claude Code CLI, a configured command) starts from nothing and gets:

- from the worker's environment, only the names in `INHERITED` (the system
  basics and the model's settings, see below), those starting with `LC_`,
  and the names an operator lists explicitly (`AW_AGENT_ENV_ALLOW`);
- `HOME` pointing at an agent home of its own (never the worker's, so
  `~/.git-credentials`, `~/.gitconfig`, `~/.ssh`, `~/.netrc` are not the worker's);
- the values its configuration sets explicitly (`ClaudeConfig.env`, `CommandConfig.env`).

Names in `is_forbidden` (any `AW_*`, GitHub tokens, database and Redis URLs, the SSH
agent socket) are refused in the extra allowlist and in explicit values alike:
configuration cannot put them back by accident.

The model's credential is not inherited either (nor can it be allowlisted): the
Claude agent reaches the model through the worker's proxy (`model_proxy`), with a
token that is worth nothing outside its run, set explicitly by the agent.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

# Taken from the worker's environment when set there.
SYSTEM_NAMES: tuple[str, ...] = ("PATH", "LANG", "LANGUAGE", "TERM", "TZ", "TMPDIR")
MODEL_NAMES: tuple[str, ...] = (
    "ANTHROPIC_MODEL",
    "CLAUDE_CONFIG_DIR",  # the CLI's own directory: transcripts, so resumes find them
)
# Switches of the CLI that keep it quiet (no telemetry, error reports, update checks).
CLI_SWITCHES: tuple[str, ...] = (
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
    "DISABLE_TELEMETRY",
    "DISABLE_ERROR_REPORTING",
    "DISABLE_AUTOUPDATER",
    "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY",
)
INHERITED: frozenset[str] = frozenset(SYSTEM_NAMES + MODEL_NAMES + CLI_SWITCHES)
INHERITED_PREFIXES: tuple[str, ...] = ("LC_",)

_FORBIDDEN_NAMES = frozenset(
    {
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "GH_ENTERPRISE_TOKEN",
        "GITHUB_ENTERPRISE_TOKEN",
        "SSH_AUTH_SOCK",
        "DATABASE_URL",
        "REDIS_URL",
        "HOME",  # the agent's home is chosen here, not passed through
    }
)
_FORBIDDEN_SUFFIXES = ("_DATABASE_URL", "_REDIS_URL")
# The model's credential and address: set explicitly (the proxy's), never inherited.
_NEVER_INHERITED = frozenset(
    {"ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_BASE_URL"}
)

# Where, under an agent home, nothing of the worker's is.
AGENT_HOME_DIRNAME = "agent-home"


def is_forbidden(name: str) -> bool:
    """True for a name an agent never gets: the worker's settings and credentials."""
    upper = name.upper()
    return (
        upper.startswith("AW_") or upper in _FORBIDDEN_NAMES or upper.endswith(_FORBIDDEN_SUFFIXES)
    )


def parse_allow(value: str) -> tuple[str, ...]:
    """The names of a comma-separated list (`AW_AGENT_ENV_ALLOW`); forbidden ones raise."""
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    check_allow(names, "AW_AGENT_ENV_ALLOW")
    return names


def check_allow(names: Iterable[str], where: str) -> None:
    """Like `check_names`, and the model's credential may not be inherited either."""
    check_names(names, where)
    model = sorted(n for n in names if n.upper() in _NEVER_INHERITED)
    if model:
        raise ValueError(
            f"{where} names the model's credential or address ({', '.join(model)}):"
            " the agent reaches the model through the worker's proxy"
        )


def check_names(names: Iterable[str], where: str) -> None:
    """Raise `ValueError` when `names` holds one an agent must never get."""
    bad = sorted(n for n in names if is_forbidden(n))
    if bad:
        raise ValueError(f"{where} names variables an agent must never get: {', '.join(bad)}")


def _inherited(name: str, extra: frozenset[str]) -> bool:
    if is_forbidden(name) or name.upper() in _NEVER_INHERITED:
        return False
    return name in INHERITED or name in extra or name.startswith(INHERITED_PREFIXES)


def build(
    home: Path,
    *,
    explicit: Mapping[str, str] | None = None,
    allow: Iterable[str] = (),
    source: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The agent's environment: allowlisted names of `source` (default: this process's),
    `HOME=home`, then the `explicit` values. Forbidden names in `allow`/`explicit` raise."""
    allow = tuple(allow)
    check_allow(allow, "the agent's extra allowlist")
    check_names(explicit or {}, "the agent's environment")
    extra = frozenset(allow)
    env = {
        k: v for k, v in (os.environ if source is None else source).items() if _inherited(k, extra)
    }
    env["HOME"] = str(home)
    env.update(explicit or {})
    return env


def prepare_home(home: Path) -> Path:
    """Create the agent home (owner-only) if needed, and return it."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    return home
