"""Rounds over real HTTP: the emulator's review and check webhooks → `aw serve` → REST effects.

As in `test_webhook_lifecycle.py`, `serve()` runs in this loop (the real ingress,
inbox, embedded queue, router, sweeper); the agent is the `ScriptedAgent`, which
pushes no commit but reports a deterministic head (`scripted_sha`) that the task
records as its pull request's head. The emulator's branch is moved to that commit
(`push`) so the check events it sends list the pull request, as GitHub's would.
"""

from __future__ import annotations

import asyncio

from agent_workflow.core.model import Phase, PhaseStatus, Task
from agent_workflow.store import Store
from agent_workflow.testing.agent import ScriptedAgent, scripted_sha
from github_emulator import DeliveryInfo, EmulatorServer
from tests.integration.helpers import eventually
from tests.integration.system import System, running_system
from tests.support.events import BOT, REPO, TRUSTED, UNTRUSTED

REVIEW_COMMENTS = [
    {"path": "widgets/a.py", "line": 3, "body": "Rename `x` to `width`."},
    {"path": "widgets/b.py", "line": 7, "body": "This needs a test."},
]
FAILING = [
    {
        "name": "tests",
        "conclusion": "failure",
        "title": "1 test failed",
        "summary": "test_area failed",
        "annotations": [
            {"path": "tests/test_a.py", "start_line": 12, "message": "AssertionError: 4 != 5"}
        ],
    }
]


async def _task(store: Store, issue: int) -> Task:
    task = await store.tasks.find(REPO, issue)
    assert task is not None
    return task


async def _delivered(system: System) -> tuple[int, int]:
    """An issue planned and delivered through webhooks: (issue, pull request number)."""
    emu = system.emu
    issue = await emu.admin.create_issue(REPO, "Add widgets", body="Please.", author=TRUSTED)
    await emu.admin.add_label(REPO, issue, "agent", user=TRUSTED)
    await system.phase_settled(issue, Phase.PLAN)
    await emu.admin.comment(REPO, issue, "/approve", user=TRUSTED)
    await system.phase_settled(issue, Phase.DELIVER)
    task = await _task(system.store, issue)
    assert task.pr_number is not None
    return issue, task.pr_number


async def _resend(emu: EmulatorServer, delivery: DeliveryInfo, copies: int) -> None:
    """The same event again, all at once: redeliveries (same delivery id, same body: the
    inbox answers them) and fresh deliveries of it whose bodies differ in a field nothing
    reads (as a second hook, or GitHub re-sending it later, would send: they pass the inbox,
    so only the router's one-round-per-trigger stands between them and a second round)."""
    [payload] = [d.payload for d in await emu.admin.deliveries() if d.id == delivery.id][:1]
    assert payload is not None
    variants = [{**payload, "copy": n} for n in range(copies)]
    await asyncio.gather(
        emu.admin.redeliver(delivery.id, concurrent=copies),
        *(emu.admin.send_webhook(delivery.event, variant) for variant in variants),
    )


async def _round_settled(system: System, issue: int, phase: Phase, attempt: int) -> None:
    """Wait until round `attempt` of `phase` is final with its effects, and all is routed."""
    store = system.store

    async def done() -> bool:
        task = await store.tasks.find(REPO, issue)
        run = None if task is None else await store.phases.get(task.id, phase)
        return (
            run is not None and run.attempt == attempt and run.status.is_final and run.effects_done
        )

    await eventually(done, what=f"{phase} round {attempt} of #{issue}")
    await system.settled()


async def _pr_bot_comments(system: System, pr: int) -> list[str]:
    return [c.body for c in await system.emu.admin.comments(REPO, pr) if c.author == BOT]


def _calls(agent: ScriptedAgent, phase: Phase) -> list[tuple[int, bool]]:
    return [(c.attempt, c.resume) for c in agent.calls if c.phase is phase]


async def test_review_rounds__redelivered_reviews_make_one_round_each(
    store: Store, db_url: str
) -> None:
    """Windows: a `changes_requested` review with two line comments arriving again at once
    (two redeliveries and two fresh deliveries of it) while its round runs; the first
    reply applied by GitHub with its answer lost; a second review; a reviewer without
    write access.

    One round per review (one agent run, one head), one reply in each thread (the
    agent's), one summary per round; the untrusted review starts nothing.
    """
    agent = ScriptedAgent(duration_s=0.3)  # the duplicates arrive while the round runs
    async with running_system(store, db_url, agent=agent, uncertain_backoff_s=0.0) as system:
        emu = system.emu
        issue, pr = await _delivered(system)
        # The first reply is posted but its answer is lost: reconciled by its marker.
        await emu.admin.add_fault("POST", r"/pulls/\d+/comments/\d+/replies$", "drop_after_apply")

        review = await emu.admin.submit_review(
            REPO,
            pr,
            user=TRUSTED,
            state="changes_requested",
            body="A few things.",
            comments=REVIEW_COMMENTS,
        )
        submitted = next(d for d in review.deliveries if d.event == "pull_request_review")
        assert submitted.status_code == 202
        await _resend(emu, submitted, 2)
        await _round_settled(system, issue, Phase.REVISE, 1)

        assert _calls(agent, Phase.REVISE) == [(1, False)]
        [first] = [c for c in agent.calls if c.phase is Phase.REVISE]
        assert first.round is not None
        assert [c.id for c in first.round.threads] == review.comment_ids
        task = await _task(store, issue)
        assert task.head_sha == scripted_sha(first)  # the round's one commit is the PR's head
        rounds = await store.rounds.all(task.id)
        assert [(r.phase, r.number, r.work.trigger.key) for r in rounds] == [
            (Phase.REVISE, 1, f"review:{review.id}")
        ]
        for comment_id, spec in zip(review.comment_ids, REVIEW_COMMENTS, strict=True):
            replies = await emu.admin.replies(REPO, pr, comment_id)
            assert [(r.author, r.body.split("\n")[0]) for r in replies] == [
                (BOT, f"Done: {spec['body']}")
            ], replies
        assert [f["fired"] for f in await emu.admin.faults()] == [1]
        assert system.forge.stats.uncertain == 1
        summaries = [b for b in await _pr_bot_comments(system, pr) if "## Review round" in b]
        assert len(summaries) == 1, summaries
        assert summaries[0].startswith("## Review round 1")

        # A second review: a second round, answering its own thread only.
        again = await emu.admin.submit_review(
            REPO,
            pr,
            user=TRUSTED,
            state="changes_requested",
            body="One more.",
            comments=[{"path": "widgets/a.py", "line": 4, "body": "And a docstring."}],
        )
        await _round_settled(system, issue, Phase.REVISE, 2)

        assert _calls(agent, Phase.REVISE) == [(1, False), (2, False)]
        assert len(await emu.admin.replies(REPO, pr, again.comment_ids[0])) == 1
        for comment_id in review.comment_ids:  # the first review's threads: still one reply
            assert len(await emu.admin.replies(REPO, pr, comment_id)) == 1
        summaries = [b for b in await _pr_bot_comments(system, pr) if "## Review round" in b]
        assert [s.split("\n")[0] for s in summaries] == ["## Review round 1", "## Review round 2"]

        # A reviewer without write access asks for changes: nothing happens.
        before = len(await _pr_bot_comments(system, pr))
        untrusted = await emu.admin.submit_review(
            REPO,
            pr,
            user=UNTRUSTED,
            state="changes_requested",
            body="Rewrite it all.",
            comments=[{"path": "widgets/a.py", "line": 1, "body": "Delete this."}],
        )
        # The review is stored (its reviewer is the router's question), then ignored.
        assert {(d.event, d.status_code) for d in untrusted.deliveries} == {
            ("pull_request_review", 202),
            ("pull_request_review_comment", 200),  # not a command
        }
        await system.settled()

        assert _calls(agent, Phase.REVISE) == [(1, False), (2, False)]
        assert len(await store.rounds.all(task.id)) == 2
        assert await emu.admin.replies(REPO, pr, untrusted.comment_ids[0]) == []
        assert len(await _pr_bot_comments(system, pr)) == before
        run = await store.phases.get(task.id, Phase.REVISE)
        assert run is not None
        assert (run.attempt, run.status) == (2, PhaseStatus.COMPLETE)


async def test_repair_rounds__one_per_head_then_the_same_failure_blocks_once(
    store: Store, db_url: str
) -> None:
    """Windows: a failing check suite on the head we pushed (a `check_run` and a
    `check_suite` event for it, each also redelivered and re-sent at once); then the
    same failure on the commit the repair round pushed, twice.

    One repair round for the first head (one agent run); on its commit the same
    failure blocks the task with one comment, and no second round starts.
    """
    agent = ScriptedAgent(duration_s=0.3)
    async with running_system(store, db_url, agent=agent) as system:
        emu = system.emu
        issue, pr = await _delivered(system)
        task = await _task(store, issue)
        head = task.head_sha
        assert head is not None
        [deliver] = [c for c in agent.calls if c.phase is Phase.DELIVER]
        assert head == scripted_sha(deliver)
        # The branch on "GitHub" is at the commit deliver pushed: checks of it list the PR.
        await emu.admin.push(REPO, task.branch, user=BOT, sha=head)

        checks = await emu.admin.complete_checks(REPO, head, FAILING)
        assert checks.conclusion == "failure"
        assert {d.event for d in checks.deliveries} == {"check_run", "check_suite"}
        suite = next(d for d in checks.deliveries if d.event == "check_suite")
        await _resend(emu, suite, 2)
        await _round_settled(system, issue, Phase.REPAIR, 1)

        assert _calls(agent, Phase.REPAIR) == [(1, False)]
        [repair] = [c for c in agent.calls if c.phase is Phase.REPAIR]
        assert repair.round is not None
        assert [c.name for c in repair.round.checks] == ["tests"]
        task = await _task(store, issue)
        repaired = scripted_sha(repair)
        assert task.head_sha == repaired
        rounds = await store.rounds.all(task.id)
        assert [(r.phase, r.number, r.work.trigger.key, r.pushed_sha) for r in rounds] == [
            (Phase.REPAIR, 1, f"checks:{head}", repaired)
        ]
        summaries = [b for b in await _pr_bot_comments(system, pr) if "## CI repair round" in b]
        assert len(summaries) == 1, summaries

        # The repair's commit fails the same way (the line moved: same signature).
        await emu.admin.push(REPO, task.branch, user=BOT, sha=repaired)
        same = [
            {
                **FAILING[0],
                "annotations": [
                    {
                        "path": "tests/test_a.py",
                        "start_line": 14,
                        "message": "AssertionError: 4 != 5",
                    }
                ],
            }
        ]
        again = await emu.admin.complete_checks(REPO, repaired, same)
        await system.settled()
        suite_again = next(d for d in again.deliveries if d.event == "check_suite")
        await _resend(emu, suite_again, 1)
        await system.settled()

        assert _calls(agent, Phase.REPAIR) == [(1, False)]  # no second round
        assert len(await store.rounds.all(task.id)) == 1
        comments = await _pr_bot_comments(system, pr)
        blocked = [b for b in comments if "failed again the same way" in b]
        assert len(blocked) == 1, comments
        assert "agent-blocked" in await emu.admin.labels(REPO, issue)
        assert len([b for b in comments if "## CI repair round" in b]) == 1
