"""The Claude Code stream as live progress (`core.progress`).

- a `TodoWrite` tool call's `todos` is the checklist (its `in_progress` item active);
- any other tool call is what the agent does now: the tool and its target (a file, a
  pattern, the first line of a command), paths shown relative to the checkout so no
  worker path is published;
- each main-thread assistant message (by message id) is a turn;
- cost so far: the usage each message reports, at the model's list price (the CLI's own
  figure, `ResultMessage.total_cost_usd`, arrives only at the end and is what is recorded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from claude_agent_sdk import AssistantMessage, Message, ToolUseBlock

from agent_workflow.agents.claude_tools import TODO_TOOL
from agent_workflow.agents.model_metering import price_of
from agent_workflow.core.progress import Progress, Step

# Where a tool's target is, in the order looked for.
_TARGET_KEYS = ("file_path", "notebook_path", "path", "pattern", "command", "url", "query")


@dataclass
class StreamProgress:
    """Folds the SDK's messages into a `Progress`; `see` says whether anything changed."""

    cwd: str = ""
    checklist: tuple[Step, ...] = ()
    doing: str = ""
    cost_usd: float = 0.0
    _turns: set[str] = field(default_factory=set)
    _anonymous_turns: int = 0
    _priced: set[str] = field(default_factory=set)

    @property
    def turns(self) -> int:
        """Main-thread assistant messages so far."""
        return len(self._turns) + self._anonymous_turns

    def progress(self) -> Progress:
        """The state to report."""
        return Progress(self.checklist, self.doing, self.turns, self.cost_usd)

    def see(self, message: Message) -> bool:
        """Take one message in; True when the progress changed."""
        if not isinstance(message, AssistantMessage):
            return False
        before = self.progress()
        self._count(message)
        for block in message.content:
            if isinstance(block, ToolUseBlock):
                self._tool(block.name, block.input)
        return self.progress() != before

    def _count(self, message: AssistantMessage) -> None:
        mid = message.message_id
        if message.parent_tool_use_id is None:
            if mid is None:
                self._anonymous_turns += 1
            else:
                self._turns.add(mid)
        # The SDK sends one message per content block of a response, each with its usage.
        if message.usage and (mid is None or mid not in self._priced):
            if mid is not None:
                self._priced.add(mid)
            self.cost_usd += _cost(message.model, message.usage)

    def _tool(self, name: str, arguments: dict[str, Any]) -> None:
        if name == TODO_TOOL and isinstance(arguments.get("todos"), list):
            self.checklist = _todos(arguments["todos"])
            active = [s.text for s in self.checklist if s.active]
            if active:
                self.doing = active[0]
            return
        target = next((arguments[k] for k in _TARGET_KEYS if isinstance(arguments.get(k), str)), "")
        self.doing = f"{name} {self._relative(target)}".strip()

    def _relative(self, target: str) -> str:
        first = target.strip().splitlines()[0] if target.strip() else ""
        if self.cwd:
            first = first.replace(self.cwd.rstrip("/") + "/", "").replace(self.cwd, ".")
        return first


def _todos(items: list[Any]) -> tuple[Step, ...]:
    steps = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("content"), str):
            continue
        status = item.get("status")
        steps.append(
            Step(item["content"], done=status == "completed", active=status == "in_progress")
        )
    return tuple(steps)


def _cost(model: str, usage: dict[str, Any]) -> float:
    price = price_of(model)

    def n(key: str) -> int:
        value = usage.get(key)
        return value if isinstance(value, int) else 0

    return (
        n("input_tokens") * price.input
        + n("output_tokens") * price.output
        + n("cache_creation_input_tokens") * price.cache_write
        + n("cache_read_input_tokens") * price.cache_read
    ) / 1_000_000
