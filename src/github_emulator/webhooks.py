"""Webhook deliveries: signed like GitHub's, recorded, and redeliverable with the same id.

GitHub never retries a failed delivery by itself; neither does this sender.
A redelivery (admin API) resends the recorded body with the same
`X-GitHub-Delivery` id, which is exactly the duplicate a receiver must absorb.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx

from github_emulator.events import Event

#: GitHub gives a receiver 10 s to answer before it records a timeout.
DELIVERY_TIMEOUT = 10.0
USER_AGENT = "GitHub-Hookshot/emulator"


class Signature(StrEnum):
    """How a delivery is signed; anything but `valid` must be rejected by the receiver."""

    VALID = "valid"  # X-Hub-Signature-256 and the legacy SHA-1 X-Hub-Signature
    SHA1_ONLY = "sha1_only"  # only the legacy header
    INVALID = "invalid"  # a well-formed but wrong SHA-256 signature
    NONE = "none"  # no signature headers


@dataclass
class Delivery:
    """One attempt to deliver an event; redeliveries share `guid` and differ in `seq`."""

    seq: int
    guid: str
    event: str
    action: str
    body: bytes
    signature: Signature
    redelivery: bool = False
    status_code: int | None = None
    error: str | None = None
    duration: float = 0.0
    delivered_at: float = field(default_factory=time.time)  # when the attempt was made
    headers: dict[str, str] = field(default_factory=dict)  # as sent (signatures included)

    @property
    def payload(self) -> Any:
        """The JSON body."""
        return json.loads(self.body)

    def _ids(self, key: str) -> int | None:
        value = self.payload.get(key) if isinstance(self.payload, dict) else None
        found = value.get("id") if isinstance(value, dict) else None
        return found if isinstance(found, int) else None

    @property
    def installation_id(self) -> int | None:
        """`installation.id` of the payload (an App's delivery), else None."""
        return self._ids("installation")

    @property
    def repository_id(self) -> int | None:
        """`repository.id` of the payload, else None."""
        return self._ids("repository")

    @property
    def repository(self) -> str | None:
        """`repository.full_name` of the payload, else None."""
        repo = self.payload.get("repository") if isinstance(self.payload, dict) else None
        name = repo.get("full_name") if isinstance(repo, dict) else None
        return name if isinstance(name, str) else None

    def as_json(self) -> dict[str, Any]:
        """The delivery as the admin API lists it (payload included)."""
        return {
            "seq": self.seq,
            "id": self.guid,
            "event": self.event,
            "action": self.action,
            "redelivery": self.redelivery,
            "status_code": self.status_code,
            "error": self.error,
            "duration": self.duration,
            "signature": str(self.signature),
            "payload": json.loads(self.body),
        }


def sign(secret: str, body: bytes, digest: str = "sha256") -> str:
    """`sha256=<hex>` (or `sha1=`), the HMAC of the raw body GitHub puts in the header."""
    mac = hmac.new(secret.encode(), body, digest)
    return f"{digest}={mac.hexdigest()}"


class WebhookSender:
    """Sends events to one configured URL; off while no URL is set."""

    def __init__(self, url: str | None = None, secret: str | None = None, hook_id: int = 1) -> None:
        self.url = url
        self.secret = secret
        self.hook_id = hook_id
        self.deliveries: list[Delivery] = []
        self._seq = itertools.count(1)
        self._pending: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    def configure(self, url: str | None, secret: str | None) -> None:
        """Point deliveries somewhere else (or nowhere)."""
        self.url, self.secret = url, secret

    async def aclose(self) -> None:
        """Finish outstanding deliveries and close the HTTP client."""
        await self.wait_idle()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def dispatch(self, events: Iterable[Event], *, wait: bool) -> list[Delivery]:
        """Deliver events in order; with `wait=False` in the background (see `wait_idle`)."""
        if not self.url:
            return []
        if wait:
            return [await self.send(event) for event in events]
        task = asyncio.create_task(self._send_all(list(events)))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return []

    async def _send_all(self, events: list[Event]) -> None:
        # Sequential, so a receiver sees the events of one request in order.
        for event in events:
            await self.send(event)

    async def wait_idle(self) -> None:
        """Wait until every background delivery has been answered (or failed)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def send(self, event: Event, signature: Signature = Signature.VALID) -> Delivery:
        """Deliver one event now with a fresh delivery id."""
        body = json.dumps(event.payload, separators=(",", ":")).encode()
        delivery = Delivery(
            seq=next(self._seq),
            guid=str(uuid.uuid4()),
            event=event.name,
            action=event.action,
            body=body,
            signature=signature,
        )
        return await self._post(delivery)

    async def redeliver(self, guid: str, *, concurrent: int = 1) -> list[Delivery]:
        """Resend a past delivery with the same id, `concurrent` copies at once."""
        original = next((d for d in self.deliveries if d.guid == guid), None)
        if original is None:
            raise KeyError(guid)
        copies = [
            Delivery(
                seq=next(self._seq),
                guid=original.guid,
                event=original.event,
                action=original.action,
                body=original.body,
                signature=original.signature,
                redelivery=True,
            )
            for _ in range(max(concurrent, 1))
        ]
        return list(await asyncio.gather(*(self._post(copy) for copy in copies)))

    def _headers(self, delivery: Delivery) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "x-github-event": delivery.event,
            "x-github-delivery": delivery.guid,
            "x-github-hook-id": str(self.hook_id),
            "x-github-hook-installation-target-type": "repository",
        }
        secret = self.secret
        if secret and delivery.signature in (Signature.VALID, Signature.SHA1_ONLY):
            headers["x-hub-signature"] = sign(secret, delivery.body, "sha1")
        if secret and delivery.signature is Signature.VALID:
            headers["x-hub-signature-256"] = sign(secret, delivery.body)
        if delivery.signature is Signature.INVALID:
            headers["x-hub-signature-256"] = sign(secret or "wrong", delivery.body + b" ")
        return headers

    async def _post(self, delivery: Delivery) -> Delivery:
        self.deliveries.append(delivery)
        delivery.delivered_at = time.time()
        delivery.headers = self._headers(delivery)
        if not self.url:
            delivery.error = "no webhook URL configured"
            return delivery
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=DELIVERY_TIMEOUT)
        started = time.monotonic()
        try:
            response = await self._client.post(
                self.url, content=delivery.body, headers=delivery.headers
            )
            delivery.status_code = response.status_code
        except httpx.HTTPError as exc:
            # Recorded, never raised: a receiver being down must not fail the API call.
            delivery.error = f"{type(exc).__name__}: {exc}"
        delivery.duration = time.monotonic() - started
        return delivery
