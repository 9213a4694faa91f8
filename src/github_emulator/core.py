"""The emulator as one object: configuration plus every piece of state the routes share."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from github_emulator.credentials import Credentials
from github_emulator.events import Event, EventFactory
from github_emulator.faults import FaultBook
from github_emulator.ratelimit import RateLimiter
from github_emulator.render import Renderer
from github_emulator.state import EmulatorState
from github_emulator.webhooks import Delivery, WebhookSender

DEFAULT_TOKEN = "emulator-token"
DEFAULT_BOT = "agent-workflow[bot]"


@dataclass
class EmulatorConfig:
    """How an emulator is set up. Everything has a default that works for tests.

    `tokens` maps accepted tokens to the login they act as. `app_id` /
    `app_public_key_pem` enable GitHub App auth (installation tokens act as
    `bot_login`). Webhooks stay off until `webhook_url` is set. With
    `rest_webhooks_wait` the REST call that caused an event returns only after
    the receiver answered; by default those deliveries run in the background,
    as on GitHub (the admin API's `wait_webhooks` waits for them).
    """

    tokens: dict[str, str] = field(default_factory=lambda: {DEFAULT_TOKEN: DEFAULT_BOT})
    bot_login: str = DEFAULT_BOT
    webhook_url: str | None = None
    webhook_secret: str | None = None
    hook_id: int = 1
    rest_webhooks_wait: bool = False
    app_id: int | None = None
    app_public_key_pem: str | None = None
    installation_id: int = 1
    #: Several installations: id → the account (repository owner) each is installed on.
    installations: dict[int, str] = field(default_factory=dict)
    installation_token_ttl: float = 3600.0
    rate_limit: int = 5000
    rate_limit_window: float = 3600.0
    web_url: str = "https://github.com"


class Emulator:
    """State, credentials, limits, faults, webhooks and counters behind the routes."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config = config or EmulatorConfig()
        self.render = Renderer(web_url=config.web_url)
        self.credentials = Credentials(
            config.tokens,
            bot_login=config.bot_login,
            app_id=config.app_id,
            app_public_key_pem=config.app_public_key_pem,
            installation_id=config.installation_id,
            installations=config.installations,
            token_ttl=config.installation_token_ttl,
        )
        of = self.credentials.installation_of if config.app_id is not None else None
        self.state = EmulatorState(self.render, EventFactory(self.render, of))
        self.limiter = RateLimiter(config.rate_limit, config.rate_limit_window)
        self.faults = FaultBook()
        self.webhooks = WebhookSender(config.webhook_url, config.webhook_secret, config.hook_id)
        #: Requests per "METHOD /route/{template}", faulted ones included.
        self.requests: Counter[str] = Counter()
        #: Faults fired per "kind METHOD /route/{template}".
        self.fault_hits: Counter[str] = Counter()
        #: Conditional requests answered 304 per "METHOD /route/{template}" (not charged).
        self.not_modified: Counter[str] = Counter()
        self._closing = asyncio.Event()

    def set_api_url(self, url: str) -> None:
        """Tell the renderer where the server listens (URLs in answers point back here)."""
        self.render.api_url = url.rstrip("/")

    async def emit(self, events: Iterable[Event]) -> list[Delivery]:
        """Deliver the webhooks a REST call caused (background unless configured to wait)."""
        return await self.webhooks.dispatch(events, wait=self.config.rest_webhooks_wait)

    async def sleep(self, seconds: float) -> None:
        """A fault's wait, cut short when the server shuts down."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), timeout=seconds)

    def wake(self) -> None:
        """Release every request a fault is holding (at shutdown)."""
        self._closing.set()

    async def aclose(self) -> None:
        """Wake sleeping faults and finish webhook deliveries."""
        self.wake()
        await self.webhooks.aclose()

    def reset_counters(self) -> None:
        """Zero the request and fault counters."""
        self.requests.clear()
        self.fault_hits.clear()
        self.not_modified.clear()
