"""The dashboard in a real browser: headless Chromium (Debian's) driven by Playwright.

`aw serve` (in this process, embedded queue) runs over a world the GitHub emulator
drives with signed webhooks: one issue planned, approved and delivered, one whose
plan the scripted agent blocks. The browser logs in through the form, sees the
tasks, opens one and reads its timeline, then retries the blocked plan with the
dashboard's button. Screenshots go to `test-artifacts/dashboard/`; with
`AW_UPDATE_SCREENSHOT=1` the task list is also written to `docs/dashboard.png`.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from agent_workflow.core.model import Phase, PhaseStatus
from agent_workflow.store import Store
from tests.integration.helpers import eventually
from tests.integration.system import running_system
from tests.support.events import REPO, TRUSTED

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CHROMIUM = "/usr/bin/chromium"
TOKEN = "browser-test-dashboard-token"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
README_SHOT = ROOT / "docs" / "dashboard.png"


def _chromium() -> str:
    """Debian's Chromium; missing is a failure in CI (scripts/ensure-system-packages)."""
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    message = (
        f"{CHROMIUM} is missing: run scripts/ensure-system-packages (apt-get install chromium)"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


async def test_browser__login_tasks_timeline_retry(store: Store, db_url: str) -> None:
    from playwright.async_api import async_playwright, expect

    executable = _chromium()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with running_system(
        store, db_url, dashboard_token=TOKEN, dashboard_actor=TRUSTED
    ) as system:
        emu = system.emu
        first = await emu.admin.create_issue(REPO, "Add a widget catalogue", author=TRUSTED)
        await emu.admin.add_label(REPO, first, "agent", user=TRUSTED)
        await system.phase_settled(first, Phase.PLAN)
        await emu.admin.comment(REPO, first, "/approve", user=TRUSTED)
        await system.phase_settled(first, Phase.DELIVER)
        blocked = await emu.admin.create_issue(
            REPO,
            'Explain <b>why</b> "it" fails',
            body="agent-test: block plan",
            author=TRUSTED,
        )
        await emu.admin.add_label(REPO, blocked, "agent", user=TRUSTED)
        await system.phase_settled(blocked, Phase.PLAN)
        delivered = await store.tasks.find(REPO, first)
        stuck = await store.tasks.find(REPO, blocked)
        assert delivered is not None
        assert stuck is not None
        assert delivered.pr_number is not None

        hook_url = emu.config.webhook_url or ""  # aw serve's webhook address
        base = hook_url.removesuffix("/webhooks/github") + "/dashboard"
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=executable, headless=True)
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 860})
                await page.goto(f"{base}/")  # not logged in: the form, and back after it
                await expect(page.get_by_label("Token")).to_be_visible()
                await page.get_by_label("Token").fill(TOKEN)
                await page.get_by_role("button", name="Log in").click()
                await expect(page.locator("h1")).to_contain_text("Tasks")
                rows = page.locator("table.tasks tbody tr")
                await expect(rows).to_have_count(2)
                await expect(page.locator("table.tasks")).to_contain_text("deliver: complete")
                await expect(page.locator("table.tasks")).to_contain_text("plan: blocked")
                await expect(page.locator("table.tasks")).to_contain_text(
                    'Explain <b>why</b> "it" fails'  # shown as text, not markup
                )
                await expect(
                    page.get_by_role("link", name=f"#{delivered.pr_number}", exact=True)
                ).to_be_visible()
                await page.screenshot(path=str(ARTIFACTS / "tasks.png"), full_page=True)
                if os.environ.get("AW_UPDATE_SCREENSHOT") == "1":
                    shutil.copyfile(ARTIFACTS / "tasks.png", README_SHOT)

                await page.get_by_role("link", name="Add a widget catalogue").click()
                timeline = page.locator("table.timeline")
                await expect(timeline).to_contain_text("plan attempt 1: fresh run by")
                await expect(timeline).to_contain_text("deliver attempt 1: fresh run by")
                await expect(timeline).to_contain_text("start_plan by alice")
                pr_link = timeline.get_by_role("link", name=re.compile(r"^open_pr"))
                await expect(pr_link).to_have_attribute(
                    "href", f"{emu.url}/{REPO}/pull/{delivered.pr_number}"
                )
                comment_links = timeline.get_by_role("link", name=re.compile(r"^comment"))
                assert await comment_links.count() >= 2  # the plan and the PR link comments
                await page.screenshot(path=str(ARTIFACTS / "task.png"), full_page=True)

                await page.goto(f"{base}/tasks/{stuck.id}")
                await expect(page.locator(".phases-table")).to_contain_text("blocked")
                await page.get_by_role("button", name="Retry plan").click()
                await expect(page.locator(".notice")).to_have_text("retry requested")

                async def retried() -> bool:
                    run = await store.phases.get(stuck.id, Phase.PLAN)
                    return run is not None and (run.status, run.attempt) == (
                        PhaseStatus.COMPLETE,
                        2,
                    )

                await eventually(retried, what="the retried plan to complete")
                await page.reload()
                await expect(page.locator(".phases-table")).to_contain_text("complete")
                await page.screenshot(path=str(ARTIFACTS / "retried.png"), full_page=True)
            finally:
                await browser.close()
