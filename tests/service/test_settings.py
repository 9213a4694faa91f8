"""One source of truth per setting: `Settings` holds the default, the layers below take values."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from agent_workflow.config import load_settings, redacted_url
from agent_workflow.core.errors import ConfigError
from agent_workflow.ingress import create_app, parse
from agent_workflow.queue.bullmq_backend import BullQueue, BullWorkerRunner
from agent_workflow.queue.embedded import EmbeddedQueue
from agent_workflow.service.handler import JobHandler
from agent_workflow.service.runtime import open_runtime, triggers_from
from agent_workflow.workspace.limiter import RunLimiter
from tests.ingress.helpers import TRIGGERS

AW_TRIGGERS = (
    "AW_PLAN_LABEL",
    "AW_APPROVE_LABEL",
    "AW_PLAN_COMMAND",
    "AW_APPROVE_COMMAND",
    "AW_RETRY_COMMAND",
    "AW_REVISE_COMMAND",
    "AW_REPAIR_COMMAND",
)


@pytest.fixture(autouse=True)
def _no_trigger_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in AW_TRIGGERS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AW_CONFIG_FILE", str(tmp_path / "none.toml"))


def test_triggers__defaults_are_the_readme_vocabulary() -> None:
    assert triggers_from(load_settings()) == TRIGGERS


def test_triggers__each_one_from_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    values = [
        "robot-go",
        "robot-ship",
        "/robot plan",
        "/robot ship",
        "/robot again",
        "/robot",
        "/robot mend",
    ]
    for name, value in zip(AW_TRIGGERS, values, strict=True):
        monkeypatch.setenv(name, value)
    triggers = triggers_from(load_settings())
    assert [
        triggers.plan_label,
        triggers.approve_label,
        triggers.plan_command,
        triggers.approve_command,
        triggers.retry_command,
        triggers.revise_command,
        triggers.repair_command,
    ] == values


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"retry_command": "  "}, "AW_RETRY_COMMAND"),
        ({"plan_label": ""}, "AW_PLAN_LABEL"),
        ({"approve_label": "Agent"}, "AW_PLAN_LABEL and AW_APPROVE_LABEL must differ"),
        ({"retry_command": "/agent  plan"}, "AW_RETRY_COMMAND must differ"),
        ({"repair_command": " "}, "AW_REPAIR_COMMAND"),
        ({"revise_command": "/agent plan"}, "AW_PLAN_COMMAND and AW_REVISE_COMMAND must differ"),
        ({"repair_command": "/agent"}, "AW_REVISE_COMMAND and AW_REPAIR_COMMAND must differ"),
    ],
)
def test_triggers__unusable__one_line_config_error(overrides: dict[str, str], message: str) -> None:
    """An empty command would match every empty comment; two equal triggers mean one is dead."""
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(**overrides)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("target", "params"),
    [
        (EmbeddedQueue, ["concurrency", "close_timeout"]),
        (BullQueue, ["prefix"]),
        (
            BullWorkerRunner,
            [
                "prefix",
                "concurrency",
                "lock_duration_ms",
                "stalled_interval_ms",
                "max_stalled_count",
                "grace_s",
                "worker_name",
            ],
        ),
        (RunLimiter, ["max_runs", "max_runs_per_repo"]),
        (create_app, ["max_body_bytes", "triggers"]),
        (parse, ["triggers"]),
        (JobHandler, ["triggers"]),
    ],
)
def test_no_second_default__these_take_the_value_from_settings(
    target: Callable[..., Any], params: list[str]
) -> None:
    signature = inspect.signature(target)
    defaulted = [
        p for p in params if signature.parameters[p].default is not inspect.Parameter.empty
    ]
    assert defaulted == []


def test_urls_with_passwords__never_shown() -> None:
    settings = load_settings(
        database_url="postgresql+asyncpg://aw:pg-s3cret@db.internal:5432/aw",
        redis_url="redis://:redis-s3cret@redis.internal:6379/0",
    )
    assert "s3cret" not in repr(settings)
    assert redacted_url(settings.database_url) == "postgresql+asyncpg://aw:***@db.internal:5432/aw"
    assert redacted_url(settings.redis_url or "") == "redis://:***@redis.internal:6379/0"
    assert redacted_url("sqlite:///x.db") == "sqlite:///x.db"


async def test_unreachable_redis__the_error_hides_the_password() -> None:
    with pytest.raises(ConfigError) as caught:
        await open_runtime(
            load_settings(redis_url="redis://:redis-s3cret@127.0.0.1:1/0")
        ).__aenter__()
    assert "s3cret" not in str(caught.value)
    assert "***" in str(caught.value)
