"""`ClaudeAgent`: a phase attempt run by the Claude Code CLI (via claude-agent-sdk).

Sessions: the run uses `request.session_id` (a UUID the core derives from task,
phase and attempt). If a transcript of that id exists it is resumed, whatever
`request.resume` says: starting the id again would be a second fresh session
beside the first (G2), and the CLI refuses that anyway. If resume was asked and
no transcript exists (the predecessor died before the model's first answer, or
on another machine), the session starts fresh under the same id and the result
says `restarted=True`.

Resume on any machine: with a `SessionStore` (the database's `store.sessions`), every
transcript line the CLI writes is mirrored to it as well (the SDK's `session_store`,
flushed eagerly so a SIGKILL loses at most the lines in flight). Before a run, the
store's copy of the session is written to this machine's disk when it is longer than
what the disk has (`transcripts.restore`), so "does a transcript exist" and the CLI's
`--resume` see the conversation a dead worker had elsewhere; `restarted=True` only when
neither the disk nor the store has it. With `ClaudeConfig.checkpoints`, every tool call
that may have changed files (Write, Edit, MultiEdit, NotebookEdit, Bash) is followed by
a checkpoint of the worktree (`workspace.checkpoints`), and a takeover starts from it.

Budgets: each phase has a turn limit and a dollar budget (`PhaseLimits`); the
task's remaining cap (`request.budget_left_usd`) lowers the dollar budget when it
is smaller. Running out of either is `Outcome.BLOCKED` with a reason naming it.
Limits apply to each run: a resumed run gets the phase's turns and dollars
afresh, bounded overall by the task's cap. `cost_usd` is what this run spent:
the CLI's `total_cost_usd` restarts from the session's recorded cost when it
resumes, and that part is subtracted (a run that was killed recorded none, so
its spending is not reported by anyone).

Environment: the CLI does NOT inherit this process's environment. It gets the
allowlisted variables of `agent_env` (PATH, locale, CLAUDE_CONFIG_DIR...),
`ClaudeConfig.env_allow`, `HOME` = the agent home (`ClaudeConfig.home`, default
`<workspace>/agent-home`), then `DEFAULT_CLI_ENV` and `ClaudeConfig.env`. No `AW_*`,
GitHub token, database or Redis URL, SSH agent socket ever reaches it (nor the shell
commands it runs), and no model credential: with a `ModelProxy` (every deployment),
`ANTHROPIC_BASE_URL` is the proxy and `ANTHROPIC_API_KEY` a token for this run alone.
The proxy meters the spending as it streams and refuses requests once the task's
budget is spent; such a run ends `BLOCKED`, naming the limit.

Shell: in deliver and compound, every Bash command runs in Claude Code's sandbox
(`sandbox.claude_settings`: bubblewrap and socat on Linux): the machine read-only
but for the worktree, the worker's home and working directory unreadable, its own
PID and network namespaces (no loopback, no `/proc/<pid>/environ` of the worker),
network only to `ClaudeConfig.allowed_domains` (none by default), no unsandboxed
escape. Before such a run the sandbox is probed (once per process); without a
working one the phase is `BLOCKED` ("sandbox unavailable (...)") and the CLI never
starts, unless `ClaudeConfig.sandbox` is False (AW_AGENT_SANDBOX=off). The plan has
no shell and needs no sandbox.

Repository settings: none are loaded (`setting_sources` empty), so the
repository's `.claude/settings*.json` (hooks, `env`, permissions) and `.mcp.json`
do nothing. Its `CLAUDE.md` / `AGENTS.md` are read here instead and put into the
prompt between delimiters marking them as untrusted repository text (`prompts`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import structlog
from claude_agent_sdk import ClaudeAgentOptions, project_key_for_directory
from claude_agent_sdk.types import SandboxSettings, SessionStore, SettingSource

from agent_workflow.agents import agent_env, prompts, sandbox, transcripts
from agent_workflow.agents.claude_checkpoints import checkpoint_hooks
from agent_workflow.agents.claude_cli import run_cli
from agent_workflow.agents.claude_result import Budget, RunLog, to_result
from agent_workflow.agents.claude_tools import guard_hooks, policy_for
from agent_workflow.agents.model_proxy import Grant, ModelProxy
from agent_workflow.agents.phase_work import PhaseWork, run_phase
from agent_workflow.core.lease import assert_lease_held
from agent_workflow.core.model import Phase
from agent_workflow.core.ports import AgentRequest, AgentResult, Outcome
from agent_workflow.core.repo_settings import PhaseLimits as PhaseLimits
from agent_workflow.core.repo_settings import capped
from agent_workflow.workspace.limiter import RunLimiter
from agent_workflow.workspace.workspace import Workspace

log = structlog.get_logger(__name__)

# A plan reads; deliver reads, edits and runs tests; compound writes one note.
DEFAULT_LIMITS: Mapping[Phase, PhaseLimits] = MappingProxyType(
    {
        Phase.PLAN: PhaseLimits(max_turns=60, max_budget_usd=3.0),
        Phase.DELIVER: PhaseLimits(max_turns=200, max_budget_usd=15.0),
        Phase.COMPOUND: PhaseLimits(max_turns=40, max_budget_usd=2.0),
    }
)

# Added to the CLI's environment unless `ClaudeConfig.env` says otherwise.
DEFAULT_CLI_ENV: Mapping[str, str] = MappingProxyType(
    {
        # The CLI is pinned by the SDK wheel; updating itself under a worker would
        # change behaviour between two attempts of the same phase.
        "DISABLE_AUTOUPDATER": "1",
    }
)

# The CLI's answer when `--resume` finds no conversation under that id.
_NO_CONVERSATION = "No conversation found"


@dataclass(frozen=True)
class ClaudeConfig:
    """How the Claude agent runs the CLI."""

    limits: Mapping[Phase, PhaseLimits] = field(default_factory=lambda: DEFAULT_LIMITS)
    model: str | None = None  # None: the CLI's default model
    # Explicit values, over the allowlisted environment and DEFAULT_CLI_ENV.
    env: Mapping[str, str] = field(default_factory=dict)
    # More names the CLI may take from this process's environment (AW_AGENT_ENV_ALLOW).
    env_allow: tuple[str, ...] = ()
    home: Path | None = None  # the CLI's HOME; None: `<workspace root>/agent-home`
    cli_path: str | None = None  # None: the CLI bundled with claude-agent-sdk
    allow_shell: bool = True  # deliver/compound may run Bash (inside the sandbox below)
    # Bash runs in Claude Code's sandbox (see `sandbox`); an editing phase without a working
    # sandbox is blocked. False (AW_AGENT_SANDBOX=off) runs Bash unconfined.
    sandbox: bool = True
    # What sandboxed commands may reach over the network (AW_AGENT_ALLOWED_DOMAINS): nothing.
    allowed_domains: tuple[str, ...] = ()
    # Which settings the CLI loads: none. "project"/"local" would run the repository's
    # own `.claude/settings*.json` hooks and `env` in the worker, "user" the agent home's.
    setting_sources: tuple[SettingSource, ...] = ()
    # Checkpoint the worktree to a hidden remote ref after each turn that changed files,
    # and start a takeover from the newest (AW_AGENT_CHECKPOINTS; the deployment's default
    # is on). False here: an agent built by hand (tests, tools) pushes no extra refs.
    checkpoints: bool = False

    def __post_init__(self) -> None:
        agent_env.check_allow(self.env_allow, "ClaudeConfig.env_allow")
        agent_env.check_names(self.env, "ClaudeConfig.env")


class ClaudeAgent:
    """An `Agent` that runs each phase with Claude Code in a git checkout of the issue's repo."""

    def __init__(
        self,
        workspace: Workspace,
        config: ClaudeConfig | None = None,
        limiter: RunLimiter | None = None,
        proxy: ModelProxy | None = None,
        sessions: SessionStore | None = None,
    ) -> None:
        """Use `workspace` for checkouts; `limiter` bounds concurrent runs (None: unbounded).

        `proxy`: the model is reached through it, with a token per run (what a deployment
        does); None only where `config.env` names the model's URL and key itself (tests).
        `sessions`: where transcripts are mirrored, so another machine can resume them
        (the database's; None: only this machine's disk).
        """
        self._workspace = workspace
        self._config = config or ClaudeConfig()
        self._limiter = limiter
        self._proxy = proxy
        self._sessions = sessions

    async def run(self, request: AgentRequest) -> AgentResult:
        """Run (or resume) the phase in its checkout; commit and push what it produced."""
        return await run_phase(
            request,
            self._workspace,
            self._session,
            self._limiter,
            keep_checkpoints=self._config.checkpoints,
        )

    # -- one session -------------------------------------------------------------------

    def _home(self) -> Path:
        home = self._config.home or self._workspace.root / agent_env.AGENT_HOME_DIRNAME
        return agent_env.prepare_home(home)

    def _env(self, home: Path) -> dict[str, str]:
        explicit = {**DEFAULT_CLI_ENV, **self._config.env}
        return agent_env.build(home, explicit=explicit, allow=self._config.env_allow)

    def _budget(self, request: AgentRequest) -> Budget:
        # The core's limits for this run (a repository's, capped) never go past ours.
        limits = self._config.limits.get(request.phase, PhaseLimits())
        turns = capped(request.max_turns, limits.max_turns)
        phase_usd = capped(request.max_budget_usd, limits.max_budget_usd)
        left = request.budget_left_usd
        task_bound = left is not None and (phase_usd is None or left < phase_usd)
        usd = left if task_bound else phase_usd
        return Budget(turns, usd, task_bound)

    async def _session(self, work: PhaseWork) -> AgentResult:
        request = work.request
        budget = self._budget(request)
        if budget.max_budget_usd is not None and budget.max_budget_usd <= 0:
            return AgentResult(
                Outcome.BLOCKED,
                reason="task budget exhausted (nothing left for this run)",
                session_id=request.session_id,
                terminal_reason="budget_exhausted",
            )
        unconfined = await self._sandbox_missing(work)
        if unconfined is not None:
            return unconfined
        home = await asyncio.to_thread(self._home)
        guidance = await asyncio.to_thread(prompts.repository_guidance, work.cwd)
        work = dataclasses.replace(work, prompt=prompts.with_guidance(work.prompt, guidance))
        if self._proxy is None:
            return await self._converse(work, self._env(home), budget)
        async with self._proxy.grant(request.task_id, request.phase, request.attempt) as grant:
            env = {**self._env(home), **model_access(grant)}
            result = await self._converse(work, env, budget)
        if grant.refused is None:
            return result
        return dataclasses.replace(
            result, outcome=Outcome.BLOCKED, reason=grant.refused, terminal_reason="task_budget"
        )

    async def _converse(
        self, work: PhaseWork, env: Mapping[str, str], budget: Budget
    ) -> AgentResult:
        """Run the CLI: resume the attempt's transcript when there is one, else start it."""
        request = work.request
        config_dir = transcripts.config_dir(env)
        # Named explicitly: the SDK's mirror looks for the transcript where this says.
        env = {**env, "CLAUDE_CONFIG_DIR": str(config_dir)}
        await self._restore_transcript(config_dir, work)
        found = await asyncio.to_thread(
            transcripts.resumable_transcript, config_dir, request.session_id
        )
        if found is None:
            await self._forget_transcript(work)
            log = await self._run(work, env, budget, resume=False, prior_usd=0.0)
            return to_result(log, budget, restarted=request.resume)
        prior = await asyncio.to_thread(transcripts.prior_cost, found)
        log = await self._run(work, env, budget, resume=True, prior_usd=prior)
        if not _lost_conversation(log):
            return to_result(log, budget, restarted=False, prior_usd=prior)
        # The CLI could not load what looked resumable: start the id afresh.
        await asyncio.to_thread(transcripts.set_aside, found)
        await self._forget_transcript(work)
        log = await self._run(work, env, budget, resume=False, prior_usd=0.0)
        return to_result(log, budget, restarted=True)

    async def _forget_transcript(self, work: PhaseWork) -> None:
        """Before the id starts afresh: drop the store's copy, or the fresh run's lines would
        follow the unusable ones and a later takeover would restore both. A write of the
        attempt, so only while the lease holds (a zombie must not erase its successor's)."""
        if self._sessions is None:
            return
        assert_lease_held()
        project = project_key_for_directory(work.cwd)
        try:
            await self._sessions.delete(
                {"project_key": project, "session_id": work.request.session_id}
            )
        except Exception as exc:  # the fresh run still works; a takeover may then restart it
            log.warning("session_store.delete_failed", error=str(exc)[:300])

    async def _restore_transcript(self, config_dir: Path, work: PhaseWork) -> None:
        """Bring the store's copy of the session to this machine's disk, when it is longer."""
        if self._sessions is None:
            return
        session_id = work.request.session_id
        project = project_key_for_directory(work.cwd)
        try:
            entries = await self._sessions.load({"project_key": project, "session_id": session_id})
            if entries:
                await asyncio.to_thread(
                    transcripts.restore, config_dir, project, session_id, entries
                )
        except Exception as exc:  # the disk (or a fresh start) still works without it
            log.warning("session_store.load_failed", session=session_id, error=str(exc)[:300])

    async def _run(
        self,
        work: PhaseWork,
        env: Mapping[str, str],
        budget: Budget,
        *,
        resume: bool,
        prior_usd: float,
    ) -> RunLog:
        log = RunLog(work.request.session_id)
        log.progress.cwd = str(work.cwd)  # paths in the progress comment are relative to it
        # A resumed CLI counts the session's earlier cost against --max-budget-usd;
        # the budget is for this run, so lift the limit by what was spent before.
        cli_budget = dataclasses.replace(
            budget,
            max_budget_usd=None
            if budget.max_budget_usd is None
            else budget.max_budget_usd + prior_usd,
        )
        options = self._options(work, env, cli_budget, log, resume=resume)
        prompt = work.resume_prompt if resume else work.prompt
        return await run_cli(prompt, options, log)

    def _options(
        self, work: PhaseWork, env: Mapping[str, str], budget: Budget, log: RunLog, *, resume: bool
    ) -> ClaudeAgentOptions:
        policy = policy_for(work.read_only, self._config.allow_shell)
        session_id = work.request.session_id
        return ClaudeAgentOptions(
            tools=list(policy.tools),
            permission_mode=policy.permission_mode,
            hooks={**guard_hooks(policy, work.cwd), **checkpoint_hooks(work.checkpoint)},
            system_prompt={"type": "preset", "preset": "claude_code"},
            cwd=str(work.cwd),
            env=dict(env),
            model=work.request.model or self._config.model,
            max_turns=budget.max_turns,
            max_budget_usd=budget.max_budget_usd,
            resume=session_id if resume else None,
            session_id=None if resume else session_id,
            setting_sources=list(self._config.setting_sources),
            strict_mcp_config=True,  # no MCP servers from the repository's .mcp.json
            cli_path=self._config.cli_path,
            stderr=log.stderr.append,
            sandbox=self._sandbox(work),
            session_store=self._sessions,
            # Each transcript line is sent to the store as it is written: a worker killed
            # mid-turn has mirrored what its disk had, not only what a finished turn had.
            session_store_flush="eager",
        )

    def _sandboxed(self, work: PhaseWork) -> bool:
        """True when this run's Bash must be sandboxed (an editing phase with a shell)."""
        return self._config.sandbox and self._config.allow_shell and not work.read_only

    def _sandbox(self, work: PhaseWork) -> SandboxSettings | None:
        if not self._sandboxed(work):
            return None
        denied, allowed = sandbox.worker_private_dirs(self._workspace.root)
        return sandbox.claude_settings(self._domains(work.request), denied, allowed)

    def _domains(self, request: AgentRequest) -> tuple[str, ...]:
        """The run's domains (a repository's, narrowed by the core), never beyond ours."""
        ours = self._config.allowed_domains
        if request.allowed_domains is None:
            return ours
        allowed = {d.casefold() for d in ours}
        return tuple(d for d in request.allowed_domains if d.casefold() in allowed)

    async def _sandbox_missing(self, work: PhaseWork) -> AgentResult | None:
        """BLOCKED when this run needs a sandbox and none works here (the CLI never starts)."""
        if not self._sandboxed(work):
            return None
        path = self._config.env.get("PATH", os.environ.get("PATH"))  # the CLI's PATH
        why = await asyncio.to_thread(sandbox.unavailable, path)
        if why is None:
            return None
        return AgentResult(
            Outcome.BLOCKED,
            reason=sandbox.blocked_reason(why),
            session_id=work.request.session_id,
            terminal_reason="sandbox_unavailable",
        )


def model_access(grant: Grant) -> dict[str, str]:
    """The CLI's way to the model: the proxy's URL, the run's token, no other credential."""
    return {
        "ANTHROPIC_BASE_URL": grant.base_url,
        "ANTHROPIC_API_KEY": grant.token,
        "ANTHROPIC_AUTH_TOKEN": "",
        "CLAUDE_CODE_OAUTH_TOKEN": "",
    }


def _lost_conversation(log: RunLog) -> bool:
    """True when a resume failed because the CLI found no conversation under the id."""
    failed = log.result is None or log.result.is_error
    return failed and _NO_CONVERSATION in log.failure()
