"""The effect ledger: performs each keyed effect once against a forge with no idempotency keys.

DESIGN §5, as recovery points:
  1. insert the effect `started` (fenced) — or find it;
  2. `done` → skip, no forge call;
  3. `started` by an earlier attempt → uncertain: reconcile (marker / PR by head) and adopt;
  4. perform, then record `done` with the external id (fenced);
  5. refused definitely by the forge (`EffectRefused`: a 4xx no resend can fix) → record
     `refused` (fenced) and raise; a `refused` row is never sent again (raised at once).

The ledger trusts only itself (DESIGN §9): it adopts a comment only when our own
identity wrote it and it ends with the effect's marker signed under our secret, and a
pull request only when our own identity opened it. Everything posted is capped at
GitHub's limits here, so no effect is refused for its length.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace

import structlog

from agent_workflow.core.effects import (
    Effect,
    EffectKind,
    EffectRow,
    EffectStart,
    EffectStatus,
    Markers,
)
from agent_workflow.core.errors import EffectRefused, UncertainOutcome
from agent_workflow.core.lease import assert_lease_held
from agent_workflow.core.model import Guard
from agent_workflow.core.neutralise import BODY_LIMIT, cap_body, cap_title
from agent_workflow.core.ports import Clock, EffectStore, Forge
from agent_workflow.core.telemetry import NO_TELEMETRY, Telemetry

log = structlog.get_logger(__name__)

# An uncertain mutation is reconciled and, if absent, performed again this many times
# before the effect is left `started` for a later attempt (the sweeper) to resolve.
UNCERTAIN_ROUNDS = 3


@dataclass(frozen=True)
class Scope:
    """Which task/phase/attempt the effects belong to, and the fence that guards them."""

    task_id: int | None
    phase: str
    attempt: int
    guard: Guard | None


class Ledger:
    """Performs effects exactly once (G3); reads the forge only to resolve uncertainty (G6)."""

    def __init__(
        self,
        effects: EffectStore,
        forge: Forge,
        clock: Clock,
        *,
        uncertain_backoff_s: float,
        own_login: str,
        markers: Markers,
        telemetry: Telemetry = NO_TELEMETRY,
    ) -> None:
        if not own_login:  # fail closed: without it nothing could ever be adopted safely
            raise ValueError("the ledger needs our own GitHub login")
        self._effects = effects
        self._forge = forge
        self._clock = clock
        self._backoff = uncertain_backoff_s
        self._own = own_login.casefold()
        self._markers = markers
        self._telemetry = telemetry

    def _ours(self, author: str) -> bool:
        return author.casefold() == self._own

    def _body(self, effect: Effect) -> str:
        """The text posted: capped so that it and the marker fit GitHub's limit."""
        marker = self._markers.marker(effect.key)
        return self._markers.mark(cap_body(effect.body, BODY_LIMIT - len(marker) - 2), effect.key)

    async def begin(self, effects: Sequence[Effect], scope: Scope) -> dict[str, EffectRow]:
        """Insert the rows of several effects `started` at once (or find them), by key."""
        starts = [
            EffectStart(e.key, scope.task_id, scope.phase, scope.attempt, e.kind, e.fingerprint())
            for e in effects
        ]
        rows = await self._effects.begin(starts, scope.guard, self._clock())
        return {row.key: row for row in rows}

    async def perform(
        self, effect: Effect, scope: Scope, row: EffectRow | None = None
    ) -> str | None:
        """Make `effect` have happened exactly once; return its external id (comment id, PR number).

        `row` is the effect's row from an earlier `begin`; without it the row is begun here.
        """
        if row is None:
            row = (await self.begin([effect], scope))[effect.key]
        if row.status is EffectStatus.DONE:
            return row.external_id
        if row.status is EffectStatus.REFUSED:  # terminal: no request, ever again
            raise EffectRefused(f"effect {effect.key} was refused earlier", status=0)
        try:
            return await self._perform(effect, scope, uncertain=not row.fresh)
        except EffectRefused as exc:
            # The raw answer (URL, GitHub's text) goes to the log only, never to a comment.
            log.warning("effect.refused", key=effect.key, status=exc.status, error=str(exc))
            self._telemetry.effect(effect.kind, "terminal")
            await self._effects.mark_refused(effect.key, scope.guard, self._clock())
            raise

    async def posted(self, key: str) -> str | None:
        """The external id of effect `key` when it is `done` (a database read), else None."""
        row = await self._effects.find(key)
        return row.external_id if row is not None and row.status is EffectStatus.DONE else None

    async def edit(self, effect: Effect, comment_id: str, body: str) -> None:
        """Replace the text of the comment `effect` posted as `comment_id`; its marker stays.

        Not an effect: nothing is recorded, and an edit that is lost is superseded by the
        next. Fenced like every mutation: a worker past its lease never sends it (G5).
        """
        assert_lease_held()
        marked = self._body(replace(effect, body=body))
        await self._forge.edit_comment(effect.repo, int(comment_id), marked)

    async def _perform(self, effect: Effect, scope: Scope, *, uncertain: bool) -> str | None:
        """Steps 3–4: reconcile an uncertain effect, else send it (a few rounds)."""
        for round_ in range(1, UNCERTAIN_ROUNDS + 1):
            if uncertain:
                found = await self._reconcile(effect)
                self._telemetry.effect(effect.kind, "reconciled")
                if found is not None:
                    log.info("effect.adopted", key=effect.key, external_id=found)
                    await self._effects.mark_done(effect.key, found, scope.guard, self._clock())
                    self._telemetry.effect(effect.kind, "adopted")
                    return found
            assert_lease_held()  # a worker frozen past its lease must not send (G5)
            try:
                external_id = await self._apply(effect)
            except UncertainOutcome:
                log.warning("effect.uncertain", key=effect.key, round=round_)
                self._telemetry.uncertain(effect.kind)
                if round_ == UNCERTAIN_ROUNDS:
                    raise
                uncertain = True
                await asyncio.sleep(self._backoff * round_)
                continue
            await self._effects.mark_done(effect.key, external_id, scope.guard, self._clock())
            self._telemetry.effect(effect.kind, "performed")
            return external_id
        raise AssertionError("unreachable")  # pragma: no cover

    async def _apply(self, effect: Effect) -> str | None:
        forge = self._forge
        match effect.kind:
            case EffectKind.COMMENT:
                comment_id = await forge.create_comment(
                    effect.repo, effect.issue_number, self._body(effect)
                )
                return str(comment_id)
            case EffectKind.ADD_LABELS:
                await forge.add_labels(effect.repo, effect.issue_number, effect.labels)
                return None
            case EffectKind.REMOVE_LABEL:
                await forge.remove_label(effect.repo, effect.issue_number, effect.labels[0])
                return None
            case EffectKind.REPLY:
                reply_id = await forge.reply_to_review_comment(
                    effect.repo, effect.issue_number, effect.reply_to, self._body(effect)
                )
                return str(reply_id)
            case EffectKind.OPEN_PR:
                pr = await forge.open_pull_request(
                    effect.repo,
                    head=effect.head,
                    base=effect.base,
                    title=cap_title(effect.title),
                    body=self._body(effect),
                    draft=effect.draft,
                )
                if not self._ours(pr.author):  # the forge adopted someone else's PR (422)
                    raise EffectRefused(
                        f"pull request #{pr.number} from {effect.head!r} was opened by "
                        f"{pr.author!r}, not by us: not adopting it",
                        status=422,
                    )
                return str(pr.number)
            case _:  # pragma: no cover - a new kind without a branch is a loud bug
                raise AssertionError(f"unknown effect kind {effect.kind!r}")

    async def _reconcile(self, effect: Effect) -> str | None:
        """Find an uncertain effect on the forge. None: absent (or idempotent: just redo it)."""
        match effect.kind:
            case EffectKind.COMMENT:
                comments = await self._forge.list_comments(effect.repo, effect.issue_number)
                for comment in reversed(comments):  # ours is most likely among the newest
                    if self._ours(comment.author) and self._markers.marks(comment.body, effect.key):
                        return str(comment.id)
                return None
            case EffectKind.REPLY:
                replies = await self._forge.list_review_comments(effect.repo, effect.issue_number)
                for reply in reversed(replies):
                    if (
                        reply.in_reply_to_id == effect.reply_to
                        and self._ours(reply.author)
                        and self._markers.marks(reply.body, effect.key)
                    ):
                        return str(reply.id)
                return None
            case EffectKind.OPEN_PR:
                pr = await self._forge.find_pull_request(effect.repo, effect.head)
                if pr is None or not self._ours(pr.author):
                    return None  # someone else's PR is not ours to adopt: opening ours decides
                return str(pr.number)
            case EffectKind.ADD_LABELS | EffectKind.REMOVE_LABEL:
                return None  # idempotent by nature: performing again is the reconciliation
            case _:  # pragma: no cover
                raise AssertionError(f"unknown effect kind {effect.kind!r}")
