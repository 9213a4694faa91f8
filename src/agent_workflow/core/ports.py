"""The ports the core needs, declared here so the core depends on nothing else.

The adapters implement them: `store` (SQL), `forge` (GitHub over HTTP), `agents`
(Claude Code and a command), and the twins in `agent_workflow.testing`. Each
protocol is the narrow boundary the core sees; value types crossing it live here too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable

from agent_workflow.core.effects import EffectRow, EffectStart
from agent_workflow.core.model import (
    Guard,
    IssueState,
    Phase,
    PhaseRun,
    PhaseStatus,
    RoundTrigger,
    Task,
    TaskInfo,
)

Clock = Callable[[], float]
"""Seconds since the epoch; leases compare against it. Tests pass a fake one."""

# -- the forge ------------------------------------------------------------------

Permission = Literal["admin", "maintain", "write", "triage", "read", "none"]


@dataclass(frozen=True)
class Comment:
    """An issue comment as the forge reports it."""

    id: int
    body: str
    author: str = ""


@dataclass(frozen=True)
class PullRequest:
    """A pull request as the forge reports it."""

    number: int
    head: str
    state: str = "open"
    merged: bool = False
    url: str = ""
    author: str = ""  # the login that opened it; the ledger adopts only its own
    draft: bool = False


@dataclass(frozen=True)
class ReviewComment:
    """A pull request review comment (a line comment, or a reply in its thread)."""

    id: int
    body: str
    author: str = ""
    path: str = ""
    line: int | None = None
    diff_hunk: str = ""
    in_reply_to_id: int | None = None  # set on replies: the thread's first comment


@dataclass(frozen=True)
class CheckRun:
    """A check run on a commit, with what GitHub shows of its failure."""

    id: int
    name: str
    status: str  # queued | in_progress | completed
    conclusion: str | None  # success | failure | timed_out | cancelled | ... (None: running)
    title: str = ""
    summary: str = ""
    text: str = ""  # the run's output text (where CI puts a log excerpt)
    annotations: tuple[str, ...] = ()  # "path:line: message", failing runs only


@dataclass(frozen=True)
class RepoFile:
    """A file of a repository at a ref, as the contents API answers.

    `unchanged`: GitHub answered 304 to the ETag asked with (`text` and `sha` are empty:
    the caller's copy is current; such an answer costs no rate limit)."""

    etag: str
    text: str = ""
    sha: str = ""  # the blob sha: the file's version
    unchanged: bool = False


@runtime_checkable
class Forge(Protocol):
    """What the core asks of GitHub (or the emulator, or the in-memory twin)."""

    async def create_comment(self, repo: str, issue_number: int, body: str) -> int:
        """Post a comment; return its id."""
        ...

    async def add_labels(self, repo: str, issue_number: int, labels: Sequence[str]) -> None:
        """Add labels (idempotent by nature)."""
        ...

    async def remove_label(self, repo: str, issue_number: int, label: str) -> None:
        """Remove a label; an absent label counts as success, a missing issue does not."""
        ...

    async def open_pull_request(
        self, repo: str, *, head: str, base: str, title: str, body: str, draft: bool = False
    ) -> PullRequest:
        """Open a PR (a draft if asked); if one already exists for `head`, adopt it."""
        ...

    async def find_pull_request(self, repo: str, head: str) -> PullRequest | None:
        """Find a PR by head branch in any state (reconciliation only)."""
        ...

    async def list_comments(self, repo: str, issue_number: int) -> list[Comment]:
        """All comments of an issue (reconciliation only)."""
        ...

    async def permission(self, repo: str, user: str) -> Permission:
        """The user's permission on the repository."""
        ...

    async def whoami(self) -> str:
        """Our own login (`<slug>[bot]` for a GitHub App): the only author the ledger trusts."""
        ...

    async def review_comments(
        self, repo: str, pr_number: int, review_id: int
    ) -> list[ReviewComment]:
        """The comments of one review (`GET …/pulls/{n}/reviews/{id}/comments`)."""
        ...

    async def list_review_comments(self, repo: str, pr_number: int) -> list[ReviewComment]:
        """Every review comment of a pull request, replies included (reconciliation)."""
        ...

    async def reply_to_review_comment(
        self, repo: str, pr_number: int, comment_id: int, body: str
    ) -> int:
        """Reply in the thread of review comment `comment_id`; return the reply's id."""
        ...

    async def edit_comment(self, repo: str, comment_id: int, body: str) -> None:
        """Replace an issue comment's body (`PATCH …/issues/comments/{id}`)."""
        ...

    async def check_runs(self, repo: str, sha: str) -> list[CheckRun]:
        """The check runs of a commit; failing ones with their annotations."""
        ...

    async def file_contents(
        self, repo: str, path: str, ref: str, *, etag: str | None = None
    ) -> RepoFile | None:
        """The file at `path` on `ref` (`GET …/contents/{path}?ref=`), None when absent;
        with `etag`, a conditional request (`unchanged` when it still matches)."""
        ...


# -- rounds ---------------------------------------------------------------------


@dataclass(frozen=True)
class RoundWork:
    """What a round works from: its trigger and the input read from GitHub when it opened
    (stored with the round, so a resumed or retried run never reads GitHub again)."""

    trigger: RoundTrigger
    comments: tuple[ReviewComment, ...] = ()  # revise: the review's comments
    checks: tuple[CheckRun, ...] = ()  # repair: the failing check runs
    signature: str = ""  # repair: what failed (names and first error lines), to spot a repeat
    start_sha: str = ""  # the pull request's head (as we pushed it) when the round opened

    @property
    def threads(self) -> tuple[ReviewComment, ...]:
        """The comments that start a thread: each gets one reply."""
        return tuple(c for c in self.comments if c.in_reply_to_id is None)


@dataclass(frozen=True)
class Round:
    """One round of a task's revise or repair phase: the attempt that runs it."""

    id: int
    task_id: int
    phase: Phase
    attempt: int
    number: int  # the n-th round of this phase for the task
    work: RoundWork
    pushed_sha: str | None = None  # the commit the round pushed (set when it completes)


class RoundOpened(StrEnum):
    """What `RoundStore.open` did."""

    OPENED = "opened"  # the round is the phase's new attempt, pending
    DUPLICATE = "duplicate"  # a round with this trigger exists already
    LIMIT = "limit"  # the phase has had its maximum number of rounds
    BUSY = "busy"  # the phase's current round is not settled yet: try again later


# -- the agent ------------------------------------------------------------------


class Outcome(StrEnum):
    """How an agent run ended."""

    SUCCESS = "success"  # the phase's work is done; `text` is the plan/summary
    BLOCKED = "blocked"  # the agent cannot finish (said so, or ran out of budget/turns)
    ERROR = "error"  # something broke; the phase may be tried again (resuming the session)


@dataclass(frozen=True)
class AgentRequest:
    """Everything an agent needs for one phase attempt.

    `resume` is true when this run takes over an earlier holder of the same
    attempt: the agent should resume `session_id` if its transcript exists,
    and otherwise start it fresh and report `restarted=True`.
    """

    task_id: int
    repo: str
    issue_number: int
    phase: Phase
    attempt: int
    session_id: str
    resume: bool
    title: str
    body: str  # the issue text, already cleaned of hidden content
    clone_url: str
    default_branch: str
    branch: str
    plan: str = ""  # the approved plan (deliver) or the delivered summary (compound)
    pr_number: int | None = None
    budget_left_usd: float | None = None  # what remains of the task's cap across attempts
    round: RoundWork | None = None  # revise/repair: what the round is about
    # The run's limits as the core decided them (the repository's settings, capped by the
    # deployment's); None: the agent's own (the deployment's) limit applies.
    max_turns: int | None = None
    max_budget_usd: float | None = None
    model: str | None = None  # None: the deployment's model
    allowed_domains: tuple[str, ...] | None = None  # None: the deployment's domains


@dataclass(frozen=True)
class AgentResult:
    """What an agent run produced, with its cost."""

    outcome: Outcome
    text: str = ""
    reason: str = ""  # for BLOCKED and ERROR
    artifacts: dict[str, str] = field(default_factory=dict)  # e.g. {"head_sha": ...}
    session_id: str = ""
    restarted: bool = False  # resume was asked but the transcript was gone
    cost_usd: float = 0.0
    turns: int = 0
    duration_s: float = 0.0
    terminal_reason: str = ""


@runtime_checkable
class PushTokens(Protocol):
    """Credentials for `git push`, per repository (the GitHub adapter implements it)."""

    async def push_token(self, repo: str) -> str:
        """A token for pushing to `repo` (`owner/name`), and for nothing more."""
        ...


@dataclass(frozen=True)
class HookDelivery:
    """One attempt in GitHub's hook-deliveries log (redeliveries share `guid`)."""

    id: int  # the attempt's id, for `…/deliveries/{id}`
    guid: str  # `X-GitHub-Delivery`: the inbox's key
    delivered_at: float  # epoch seconds
    status_code: int  # the receiver's answer; 0 when it could not be reached
    event: str
    redelivery: bool = False


@dataclass(frozen=True)
class HookRequest:
    """What GitHub sent in one delivery: its headers and JSON payload (no usable signature)."""

    headers: dict[str, str]
    payload: dict[str, Any]


@dataclass(frozen=True)
class LabelActor:
    """Who last added a label to an issue: its timeline event's id and the user object."""

    event_id: int
    user: dict[str, Any]


@runtime_checkable
class HookLog(Protocol):
    """GitHub's record of the webhooks it sent, and the reads reconciliation needs
    (the GitHub adapter implements it). `hook` is `(owner/repo, hook id)` for a
    repository webhook, None for the GitHub App's own."""

    def hook_deliveries(self, hook: tuple[str, int] | None) -> AsyncIterator[HookDelivery]:
        """Every attempt, newest first, following GitHub's cursor pagination lazily."""
        ...

    async def hook_delivery(self, hook: tuple[str, int] | None, delivery_id: int) -> HookRequest:
        """One attempt's request."""
        ...

    async def app_repositories(self) -> list[dict[str, Any]]:
        """The repositories the App's installation reaches (`repository` objects)."""
        ...

    async def repository(self, repo: str) -> dict[str, Any]:
        """One `repository` object."""
        ...

    def open_issues_labeled(self, repo: str, label: str) -> AsyncIterator[dict[str, Any]]:
        """Open issues (not pull requests) carrying `label` (`issue` objects)."""
        ...

    async def label_actor(self, repo: str, issue_number: int, label: str) -> LabelActor | None:
        """The last `labeled` event of `label` on the issue, or None when GitHub names none."""
        ...


@runtime_checkable
class Agent(Protocol):
    """A coding agent. Must be cancellable: a worker that loses its lease cancels the run."""

    async def run(self, request: AgentRequest) -> AgentResult:
        """Run (or resume) the phase and report how it ended."""
        ...


@dataclass(frozen=True)
class ModelUsage:
    """What one model response cost, as the agent's model proxy metered it."""

    request_id: str  # the proxy's id for the response: written twice, counted once
    task_id: int
    phase: Phase
    attempt: int
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float = 0.0


class UsageMeter(Protocol):
    """Where the model proxy writes spending as it happens, and reads a task's total."""

    async def record(self, usage: ModelUsage, now: float) -> None:
        """Insert or update the row of `usage.request_id` (the later write wins)."""
        ...

    async def task_spent(self, task_id: int) -> float:
        """What the task has spent: the larger of metered usage and reported run costs."""
        ...


class Spending(Protocol):
    """What the whole deployment has spent (`AW_DAILY_BUDGET_USD` is checked against it)."""

    async def spent_since(self, since: float) -> float:
        """Spending since `since` (epoch seconds), over every task: per task the larger of
        what the model proxy metered and what the agents reported."""
        ...


@dataclass(frozen=True)
class SlotUse:
    """A live agent slot, as `aw status` shows it."""

    repo: str
    holder: str
    phase_run_id: int | None
    acquired_at: float
    lease_until: float


class AgentSlots(Protocol):
    """Leased agent slots shared by every worker of the deployment (`AW_MAX_AGENTS`,
    `AW_MAX_AGENTS_PER_REPO`): a slot is live until released or until its lease passes."""

    async def acquire(
        self,
        repo: str,
        holder: str,
        *,
        phase_run_id: int | None,
        max_total: int,
        max_per_repo: int,
        lease_s: float,
        now: float,
    ) -> int | None:
        """Take a slot in one conditional statement; None while either cap is reached."""
        ...

    async def renew(self, slot_id: int, lease_s: float, now: float) -> bool:
        """Extend the slot's lease; False when it had already expired or been released."""
        ...

    async def release(self, slot_id: int, now: float) -> None:
        """Give the slot back."""
        ...


# -- the store ------------------------------------------------------------------


class TaskStore(Protocol):
    """Tasks: one row per issue (G1)."""

    async def ensure(self, info: TaskInfo, now: float) -> Task:
        """Insert if absent and return the one row; an existing task is never reset."""
        ...

    async def get(self, task_id: int) -> Task | None:
        """The task with this id."""
        ...

    async def set_pr_number(self, task_id: int, pr_number: int, now: float) -> None:
        """Remember the delivered pull request (idempotent)."""
        ...

    async def by_pull_request(
        self, repo: str, pr_number: int, repo_id: int | None = None
    ) -> Task | None:
        """The task whose delivered pull request is `pr_number` in `repo` (by the
        repository's id when given: it survives renames)."""
        ...

    async def renamed(self, task_id: int, repo: str, repo_id: int, now: float) -> Task | None:
        """Move the task to its repository's current `owner/name` and id (its effect
        keys keep the name it was created under); None when there is no such task."""
        ...

    async def set_installation(self, task_id: int, installation_id: int, now: float) -> Task | None:
        """The App installation the task's events now come through; None: no such task."""
        ...


class InstallationStore(Protocol):
    """GitHub App installations: a suspended or deleted one starts nothing."""

    async def held(self, installation_id: int) -> str | None:
        """Why nothing may start for this installation (None: it may)."""
        ...


class PhaseStore(Protocol):
    """Phase runs: every transition one conditional statement; writes after a claim fenced."""

    async def get(self, task_id: int, phase: Phase) -> PhaseRun | None:
        """The run of this phase of the task."""
        ...

    async def for_issue(
        self, repo: str, issue_number: int, repo_id: int | None = None
    ) -> IssueState | None:
        """The issue's task and all its phase runs in one read (the router's fast path);
        by the repository's id when given (it survives renames), else by `repo`."""
        ...

    async def start(
        self, task_id: int, phase: Phase, trigger: str, owner: str, lease_s: float, now: float
    ) -> PhaseRun | None:
        """Create the phase and claim it at once; None when it already exists."""
        ...

    async def ensure(self, task_id: int, phase: Phase, trigger: str, now: float) -> PhaseRun:
        """Create the phase pending (unclaimed) if absent; never resets an existing run."""
        ...

    async def claim(
        self, task_id: int, phase: Phase, owner: str, lease_s: float, now: float
    ) -> PhaseRun | None:
        """Take a claimable run (a fence bump); None when it is not claimable."""
        ...

    async def claim_effects(
        self, task_id: int, phase: Phase, owner: str, lease_s: float, now: float
    ) -> PhaseRun | None:
        """Take a finished run whose effects are outstanding; None otherwise."""
        ...

    async def heartbeat(self, guard: Guard, lease_s: float, now: float) -> bool:
        """Extend the lease; False when it was lost."""
        ...

    async def record_progress(self, guard: Guard, text: str, now: float) -> bool:
        """Keep the attempt's live progress text (fenced); False when the lease was lost."""
        ...

    async def start_agent(
        self, guard: Guard, *, session_id: str, mode: str, owner: str, now: float
    ) -> int:
        """Record, fenced, that the agent starts; the audit row id. `LeaseLost` if stale."""
        ...

    async def finish(
        self,
        guard: Guard,
        agent_run_id: int,
        status: PhaseStatus,
        result: AgentResult,
        *,
        max_failures: int,
        effects_lease_s: float,
        now: float,
    ) -> PhaseRun:
        """Record the agent's result, fenced; the row as written. `LeaseLost` if stale."""
        ...

    async def effects_finished(self, guard: Guard, now: float) -> None:
        """All effects are done: release the lease. `LeaseLost` if stale."""
        ...

    async def refused(self, guard: Guard, reason: str, now: float) -> PhaseRun:
        """A finished run's effect was refused: the run becomes `failed` with `reason`,
        its effects still outstanding (the failure's own). `LeaseLost` if stale."""
        ...

    async def release(self, guard: Guard, now: float) -> bool:
        """Give the lease up early (graceful shutdown)."""
        ...

    async def retry(self, run_id: int, seen_attempt: int, trigger: str, now: float) -> bool:
        """Start a new attempt of a blocked/failed run whose effects are done."""
        ...


class EffectStore(Protocol):
    """The effect ledger's rows (G3); writes fenced when guarded."""

    async def begin(
        self, effects: Sequence[EffectStart], guard: Guard | None, now: float
    ) -> list[EffectRow]:
        """Insert each effect `started` if absent, else read it; in the order given."""
        ...

    async def mark_done(
        self, key: str, external_id: str | None, guard: Guard | None, now: float
    ) -> None:
        """Record the effect done with its external id. `LeaseLost` if stale."""
        ...

    async def mark_refused(self, key: str, guard: Guard | None, now: float) -> None:
        """Record the effect refused by the forge (terminal). `LeaseLost` if stale."""
        ...

    async def find(self, key: str) -> EffectRow | None:
        """The effect's row, or None when it was never begun (a read, never an insert)."""
        ...


class RoundStore(Protocol):
    """Rounds after the pull request: one per trigger, each the next attempt of its phase."""

    async def open(
        self,
        task_id: int,
        phase: Phase,
        work: RoundWork,
        trigger_delivery: str,
        max_rounds: int,
        now: float,
    ) -> RoundOpened:
        """In one transaction: unless a round has this trigger, or the phase had
        `max_rounds`, or its current attempt is not settled, record the round and make it
        the phase's next attempt (pending)."""
        ...

    async def find(self, task_id: int, phase: Phase, key: str) -> Round | None:
        """The round started by the trigger `key`, if any."""
        ...

    async def get(self, task_id: int, phase: Phase, attempt: int) -> Round | None:
        """The round run by this attempt of the phase."""
        ...

    async def pushed_by(self, task_id: int, phase: Phase, sha: str) -> Round | None:
        """The round of the phase that pushed `sha`, if one did."""
        ...

    async def count(self, task_id: int, phase: Phase) -> int:
        """How many rounds the task's phase has had."""
        ...

    async def record_push(
        self, task_id: int, phase: Phase, attempt: int, sha: str, guard: Guard, now: float
    ) -> None:
        """The task's pull request head is now `sha`, pushed by this attempt (idempotent);
        fenced by `guard` (`LeaseLost` when stale)."""
        ...


class Store(Protocol):
    """What the core reads and writes; `agent_workflow.store.Store` implements it."""

    @property
    def tasks(self) -> TaskStore:
        """The tasks aggregate."""
        ...

    @property
    def phases(self) -> PhaseStore:
        """The phase runs aggregate."""
        ...

    @property
    def effects(self) -> EffectStore:
        """The effect ledger's rows."""
        ...

    @property
    def rounds(self) -> RoundStore:
        """Rounds after the pull request."""
        ...

    @property
    def slots(self) -> AgentSlots:
        """The deployment's agent slots."""
        ...

    @property
    def installations(self) -> InstallationStore:
        """GitHub App installations (suspended, deleted)."""
        ...

    @property
    def usage(self) -> Spending:
        """What the deployment has spent."""
        ...
