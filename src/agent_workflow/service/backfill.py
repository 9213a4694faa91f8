"""Backfill: nothing missed while down (issue 12).

GitHub never retries a failed delivery by itself. So on start and every
`AW_BACKFILL_INTERVAL_S` the serve process reads GitHub's hook-deliveries log
(the App's, `GET /app/hook/deliveries`, and each repository webhook of
`AW_GITHUB_HOOKS`) and ingests every delivery that never reached the inbox,
through the same path as a webhook (`ingress.inbox.store_delivery`: the same
parse with the configured triggers, the same row, the same dedupe on (delivery
id, hook id)), then enqueues its route job as the ingress would.

A delivery is taken from the log only when no attempt of its `guid` was answered
2xx (we stored it, or deliberately ignored it) and its `guid` is not in the inbox
(the 2xx was lost on the way back). The payload comes without a signature GitHub
would let us check: the router's trust checks (the actor's permission, bots
ignored) decide about it as for any event. Bounded: only attempts newer than
`AW_BACKFILL_MAX_AGE_S` (GitHub keeps three days), at most
`AW_BACKFILL_MAX_DELIVERIES` payloads fetched per pass (oldest first, the rest
next pass); after a complete pass the next one reads the log only back to the
newest attempt it saw, less `LOG_OVERLAP_S`.

Reconciliation (every `AW_RECONCILE_INTERVAL_S`, first at start): an open issue
carrying the plan label with no task is routed as if labelled, by a synthetic
`issues.labeled` whose delivery id is derived from (repository id, issue, label
event id), so repeated passes dedupe in the inbox. Its actor is the user of the
issue's last `labeled` event of that label (the router checks their permission);
when GitHub names none, nothing starts and the issue is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError

from agent_workflow.config import Settings
from agent_workflow.core import clock
from agent_workflow.core.errors import BadEvent, ForgeError, UncertainOutcome
from agent_workflow.core.model import Event
from agent_workflow.core.ports import HookDelivery, HookLog
from agent_workflow.ingress.app import DELIVERY_ID, HOOK_ID
from agent_workflow.ingress.events import Ignored
from agent_workflow.ingress.inbox import Duplicate, store_delivery
from agent_workflow.ingress.repo_triggers import RepoTriggers
from agent_workflow.queue.protocol import JobQueue, QueueClosed
from agent_workflow.service.jobs import route_job
from agent_workflow.store import Store

log = structlog.get_logger(__name__)

Hook = tuple[str, int] | None
"""A log to read: (`owner/repo`, hook id) of a repository webhook, None for the App's."""

# An attempt enters GitHub's log once it is answered (up to GitHub's 10 s delivery
# timeout after `delivered_at`), and GitHub's clock is not ours: the next pass reads
# back this far before the newest attempt the last complete pass saw.
LOG_OVERLAP_S = 60.0
# GUIDs a pass found nothing to store for (ignored or malformed events), remembered so
# later passes do not fetch their payloads again; bounded, the oldest forgotten first.
SETTLED_CACHE = 10_000
# The synthetic delivery ids of reconciliation: a prefix no GitHub GUID has, and a digest.
RECONCILE_PREFIX = "aw-reconcile-"


@dataclass(frozen=True)
class BackfillCounts:
    """What one pass did."""

    examined: int = 0  # log attempts read
    ingested: int = 0  # deliveries stored (and enqueued) by this pass
    duplicates: int = 0  # fetched, but the inbox had them by then (a late real delivery)
    ignored: int = 0  # fetched, nothing to store (not a trigger, malformed)
    failed: int = 0  # could not be fetched or stored (logged; the next pass retries)
    deferred: int = 0  # missing, but past this pass's bound: the next pass takes them


@dataclass(frozen=True)
class ReconcileCounts:
    """What one reconciliation pass did."""

    issues: int = 0  # open issues with the plan label and no task
    routed: int = 0  # synthetic events stored (and enqueued)
    no_actor: int = 0  # skipped: GitHub names no one who added the label


class Backfill:
    """Reads GitHub's delivery log and ingests what the inbox lacks; reconciles labels."""

    def __init__(
        self,
        store: Store,
        github: HookLog,
        queue: JobQueue,
        clock: Callable[[], float],
        *,
        triggers: RepoTriggers,
        hooks: Sequence[Hook],
        interval_s: float,
        max_age_s: float,
        max_deliveries: int,
        reconcile_interval_s: float,
        max_payload_bytes: int,
        own_login: str = "",
    ) -> None:
        self._store = store
        self._github = github
        self._queue = queue
        self._clock = clock
        self._triggers = triggers
        self._hooks = tuple(hooks)
        self._interval = interval_s
        self._max_age = max_age_s
        self._max_deliveries = max_deliveries
        self._reconcile_interval = reconcile_interval_s
        self._max_payload = max_payload_bytes
        self._own_login = own_login
        self._read_back_to: dict[Hook, float] = {}  # per log: after a complete pass
        self._settled: OrderedDict[str, None] = OrderedDict()

    # -- backfill ------------------------------------------------------------------------

    async def run_once(self) -> BackfillCounts:
        """One pass over every log; a log that cannot be read is logged and skipped."""
        total = BackfillCounts()
        budget = self._max_deliveries
        for hook in self._hooks:
            try:
                counts = await self._pass(hook, budget)
            except (ForgeError, UncertainOutcome) as exc:
                log.warning("backfill.log_unreadable", hook=_name(hook), error=str(exc))
                counts = BackfillCounts(failed=1)
            budget -= counts.ingested + counts.duplicates + counts.ignored + counts.failed
            total = _add(total, counts)
        if total.ingested or total.duplicates or total.failed or total.deferred:
            log.info("backfill.pass", **total.__dict__)
        return total

    async def _pass(self, hook: Hook, budget: int) -> BackfillCounts:
        floor = self._clock() - self._max_age
        floor = max(floor, self._read_back_to.get(hook, floor))
        missing, examined, newest = await self._missing(hook, floor)
        known = await self._store.deliveries.known([d.guid for d in missing])
        missing = [d for d in missing if d.guid not in known]
        missing.sort(key=lambda d: d.delivered_at)  # oldest first: events in their order
        taken, deferred = missing[: max(budget, 0)], len(missing) - max(budget, 0)
        outcomes = [await self._ingest(hook, d) for d in taken]
        counts = BackfillCounts(
            examined=examined,
            ingested=outcomes.count("ingested"),
            duplicates=outcomes.count("duplicate"),
            ignored=outcomes.count("ignored"),
            failed=outcomes.count("failed"),
            deferred=max(deferred, 0),
        )
        if not counts.failed and not counts.deferred and newest is not None:
            self._read_back_to[hook] = newest - LOG_OVERLAP_S
        return counts

    async def _missing(
        self, hook: Hook, floor: float
    ) -> tuple[list[HookDelivery], int, float | None]:
        """Attempts at or after `floor` of GUIDs never answered 2xx (one per GUID), how many
        attempts were read, and the newest `delivered_at` seen."""
        answered: set[str] = set()
        unanswered: dict[str, HookDelivery] = {}
        examined, newest = 0, None
        async for attempt in self._github.hook_deliveries(hook):
            if attempt.delivered_at < floor:
                break  # newest first: everything further is older still
            examined += 1
            newest = attempt.delivered_at if newest is None else newest
            if 200 <= attempt.status_code < 300:
                answered.add(attempt.guid)
            else:
                unanswered.setdefault(attempt.guid, attempt)
        found = [
            d
            for guid, d in unanswered.items()
            if guid not in answered and guid not in self._settled
        ]
        return found, examined, newest

    async def _ingest(self, hook: Hook, attempt: HookDelivery) -> str:
        """Fetch one attempt's request and store it as the webhook would have been."""
        try:
            request = await self._github.hook_delivery(hook, attempt.id)
            headers = {k.lower(): v for k, v in request.headers.items()}
            event = headers.get("x-github-event") or attempt.event
            hook_id = headers.get("x-github-hook-id") or ("" if hook is None else str(hook[1]))
            if not DELIVERY_ID.fullmatch(attempt.guid) or not HOOK_ID.fullmatch(hook_id):
                raise BadEvent(f"unusable delivery id {attempt.guid!r} or hook id {hook_id!r}")
            # The webhook's body limit holds for a payload read back from the log too.
            size = len(json.dumps(request.payload, separators=(",", ":")).encode())
            if size > self._max_payload:
                raise BadEvent(f"payload of {size} bytes is over {self._max_payload}")
            stored = await store_delivery(
                self._store,
                self._triggers.deployment,
                event=event,
                delivery_id=attempt.guid,
                hook_id=hook_id,
                payload=request.payload,
                now=self._clock(),
                own_login=self._own_login,
            )
        except BadEvent as exc:
            self._settle(attempt.guid)
            log.warning("backfill.rejected", delivery_id=attempt.guid, error=str(exc))
            return "ignored"
        except (ForgeError, UncertainOutcome, SQLAlchemyError, OSError) as exc:
            log.warning(
                "backfill.failed", delivery_id=attempt.guid, error=f"{type(exc).__name__}: {exc}"
            )
            return "failed"
        if isinstance(stored, Duplicate):  # the real delivery came first, late
            log.info("backfill.duplicate", delivery_id=attempt.guid, hook_id=hook_id)
            return "duplicate"
        if isinstance(stored, Ignored):
            self._settle(attempt.guid)
            return "ignored"
        await self._enqueue(attempt.guid, hook_id)
        log.info(
            "backfill.ingested",
            delivery_id=attempt.guid,
            hook_id=hook_id,
            github_event=event,
            intent=str(stored.intent) if isinstance(stored, Event) else "deferred",
        )
        return "ingested"

    async def _enqueue(self, delivery_id: str, hook_id: str) -> None:
        """Hand the stored row on; a failure loses nothing (the sweeper re-enqueues it)."""
        try:
            job_id, data = route_job(delivery_id, hook_id)
            await self._queue.enqueue(job_id, data)
        except QueueClosed:
            raise
        except Exception as exc:
            log.warning(
                "backfill.enqueue_failed",
                delivery_id=delivery_id,
                error=f"{type(exc).__name__}: {exc}",
            )

    def _settle(self, guid: str) -> None:
        self._settled[guid] = None
        while len(self._settled) > SETTLED_CACHE:
            self._settled.popitem(last=False)

    # -- reconciliation --------------------------------------------------------------------

    async def reconcile_once(self) -> ReconcileCounts:
        """Route each open plan-labelled issue that has no task, as if just labelled."""
        issues = routed = no_actor = 0
        for repository in await self._repositories():
            full_name = str(repository.get("full_name") or "")
            repo_id = repository.get("id")
            branch = str(repository.get("default_branch") or "main")
            try:
                triggers = await self._triggers.for_repo(full_name, branch)
            except (ForgeError, UncertainOutcome) as exc:  # this repository, next pass
                log.warning("backfill.reconcile_settings_failed", repo=full_name, error=str(exc))
                continue
            label = triggers.plan_label
            async for issue in self._github.open_issues_labeled(full_name, label):
                number = int(issue["number"])
                rid = repo_id if isinstance(repo_id, int) else None
                if await self._store.tasks.find(full_name, number, rid) is not None:
                    break  # newest first: everything further is older still
                issues += 1
                actor = await self._github.label_actor(full_name, number, label)
                if actor is None:
                    no_actor += 1
                    log.warning("backfill.reconcile_no_actor", repo=full_name, issue=number)
                    break  # newest first: everything further is older still
                delivery_id = reconcile_delivery_id(repo_id, full_name, number, actor.event_id)
                payload: dict[str, Any] = {
                    "action": "labeled",
                    "issue": issue,
                    "label": {"name": label},
                    "repository": repository,
                    "sender": actor.user,
                }
                stored = await store_delivery(
                    self._store,
                    triggers,
                    event="issues",
                    delivery_id=delivery_id,
                    hook_id="",
                    payload=payload,
                    now=self._clock(),
                )
                if isinstance(stored, Event):
                    routed += 1
                    await self._enqueue(delivery_id, "")
                    log.info(
                        "backfill.reconciled",
                        repo=full_name,
                        issue=number,
                        actor=stored.actor,
                        delivery_id=delivery_id,
                    )
        return ReconcileCounts(issues, routed, no_actor)

    async def _repositories(self) -> list[dict[str, Any]]:
        """The App installation's repositories, and those of `AW_GITHUB_HOOKS`."""
        found: dict[str, dict[str, Any]] = {}
        if None in self._hooks:
            for repository in await self._github.app_repositories():
                found[str(repository.get("full_name", "")).lower()] = repository
        for hook in self._hooks:
            if hook is not None and hook[0].lower() not in found:
                found[hook[0].lower()] = await self._github.repository(hook[0])
        return list(found.values())

    # -- the loop --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Backfill at once and every interval, reconcile at once and every reconcile
        interval (an interval of 0: that one never), until `stop` is set; a failing pass is
        logged, not fatal."""
        intervals = [i for i in (self._interval, self._reconcile_interval) if i > 0]
        if not intervals or not self._hooks:
            return
        next_backfill = next_reconcile = self._clock()
        with contextlib.suppress(QueueClosed):  # shutting down
            await self._loop(stop, min(intervals), next_backfill, next_reconcile)

    async def _loop(
        self, stop: asyncio.Event, wait_s: float, next_backfill: float, next_reconcile: float
    ) -> None:
        while not stop.is_set():
            now = self._clock()
            if self._interval > 0 and now >= next_backfill:
                next_backfill = now + self._interval
                await self._guarded("backfill.failed", self.run_once)
            if self._reconcile_interval > 0 and self._clock() >= next_reconcile:
                next_reconcile = self._clock() + self._reconcile_interval
                await self._guarded("backfill.reconcile_failed", self.reconcile_once)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait_s)

    @staticmethod
    async def _guarded(event: str, step: Callable[[], Any]) -> None:
        try:
            await step()
        except QueueClosed:
            raise
        except Exception:
            log.exception(event)


def backfill_for(
    settings: Settings,
    store: Store,
    forge: object,
    queue: JobQueue,
    triggers: RepoTriggers,
    own_login: str = "",
) -> Backfill | None:
    """The serve process's backfill: the App's log with App credentials, plus each
    `AW_GITHUB_HOOKS` entry; None when there is no log to read or the forge keeps none
    (the in-memory twin)."""
    app = bool(settings.github_app_id and settings.github_app_private_key)
    hooks: list[Hook] = [None] if app else []
    hooks += settings.hooks
    if not hooks or not isinstance(forge, HookLog):
        return None
    return Backfill(
        store,
        forge,
        queue,
        clock.now,
        triggers=triggers,
        hooks=hooks,
        interval_s=settings.backfill_interval_s,
        max_age_s=settings.backfill_max_age_s,
        max_deliveries=settings.backfill_max_deliveries,
        reconcile_interval_s=settings.reconcile_interval_s,
        max_payload_bytes=settings.webhook_max_body_bytes,
        own_login=own_login,
    )


def reconcile_delivery_id(repo_id: object, repo: str, issue_number: int, event_id: int) -> str:
    """The synthetic delivery id of one label event: the same on every pass and process."""
    source = repo_id if isinstance(repo_id, int) else repo.lower()
    digest = hashlib.sha256(f"{source}#{issue_number}#{event_id}".encode()).hexdigest()
    return RECONCILE_PREFIX + digest[:40]


def _name(hook: Hook) -> str:
    return "app" if hook is None else f"{hook[0]}:{hook[1]}"


def _add(a: BackfillCounts, b: BackfillCounts) -> BackfillCounts:
    return BackfillCounts(
        *(x + y for x, y in zip(a.__dict__.values(), b.__dict__.values(), strict=True))
    )
