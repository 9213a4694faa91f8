"""A repository's own issue triggers (`triggers:` in `.github/agent-workflow.yml`).

The webhook is answered without reading the repository's settings (GitHub waits for that
answer, and the settings are a GitHub read). So the ingress stores what our triggers make
an event of, and also what a repository's could (`events.may_be_repo_trigger`: any label
added to an issue, an issue comment starting with `/`), without an event. Where the
delivery is routed, `RepoTriggers` gives the triggers that hold for its repository and the
delivery is decided with them: `robot-go` plans in a repository that names it, and our
`agent` does nothing there.
"""

from __future__ import annotations

from typing import Any

from agent_workflow.core.model import Event
from agent_workflow.core.repo_settings import RepoConfigs
from agent_workflow.ingress.events import REPO_INTENTS, Ignored, Triggers, parse

#: The GitHub events whose trigger is a word a repository may choose (a label, a command).
_WORDED_EVENTS = frozenset({"issues", "issue_comment"})


class RepoTriggers:
    """The deployment's triggers, narrowed by each repository's settings file."""

    def __init__(self, deployment: Triggers, configs: RepoConfigs) -> None:
        self.deployment = deployment
        self._configs = configs

    async def for_repo(self, repo: str, default_branch: str) -> Triggers:
        """The triggers that hold in `repo` (its settings file is read through the cached
        `RepoConfigs`: at most a conditional request). An invalid file changes nothing:
        the deployment's triggers hold, and the runner says once what is wrong."""
        config = await self._configs.for_repo(repo, default_branch)
        return self.deployment.narrowed_by(config.settings.triggers)

    @staticmethod
    def decides(event_name: str, stored: Event | None) -> bool:
        """Whether the repository's triggers must decide a stored delivery: it has no event
        (kept for them), or its event is one a repository may rename the trigger of and
        came from a word someone typed on GitHub (a label or a comment; the dashboard's
        retry, say, is typed by nobody)."""
        if stored is None:
            return True
        return stored.intent in REPO_INTENTS and event_name in _WORDED_EVENTS

    async def parse(
        self, event_name: str, payload: dict[str, Any], delivery_id: str
    ) -> Event | Ignored:
        """Parse a stored delivery with its repository's triggers."""
        repository = payload.get("repository")
        repo = repository.get("full_name") if isinstance(repository, dict) else None
        branch = repository.get("default_branch") if isinstance(repository, dict) else None
        if not isinstance(repo, str) or not repo:
            return parse(event_name, payload, delivery_id, self.deployment)  # raises BadEvent
        triggers = await self.for_repo(repo, branch if isinstance(branch, str) else "main")
        return parse(event_name, payload, delivery_id, triggers)
