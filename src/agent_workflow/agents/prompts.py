"""Phase prompts: packaged default templates, overridable per repository.

A repository overrides a template by committing `.agent-workflow/prompts/<name>.md`
on its default branch (read from there, not from the agent's branch, so an
agent cannot rewrite its own instructions). Templates use `string.Template`
placeholders; values are inserted once and never re-expanded, so braces or
dollars in an issue body are harmless:

    ${repo} ${issue_number} ${title} ${body} ${plan} ${branch}
    ${default_branch} ${solution_path} ${attempt}

Names: `plan`, `deliver`, `compound` (one per phase) and `resume` (sent when
an interrupted session is resumed).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from importlib import resources

from agent_workflow.core.ports import AgentRequest

OVERRIDE_DIR = ".agent-workflow/prompts"
RESUME = "resume"


def override_path(name: str) -> str:
    """The path, inside a repository, of the file that overrides template `name`."""
    return f"{OVERRIDE_DIR}/{name}.md"


def default_template(name: str) -> str:
    """The packaged template `name` (`plan`, `deliver`, `compound` or `resume`)."""
    return (
        resources.files("agent_workflow.agents")
        .joinpath("prompts", f"{name}.md")
        .read_text(encoding="utf-8")
    )


def template_values(
    request: AgentRequest, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The placeholder values for `request` (plus phase-specific `extra` ones)."""
    values = {
        "repo": request.repo,
        "issue_number": str(request.issue_number),
        "title": request.title,
        "body": request.body,
        "plan": request.plan,
        "branch": request.branch,
        "default_branch": request.default_branch,
        "attempt": str(request.attempt),
        "solution_path": "",
    }
    values.update(extra or {})
    return values


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill `template`; unknown placeholders are left as written."""
    return string.Template(template).safe_substitute(values)
