"""The pages in a real headless Chromium (Debian's ``chromium`` package, driven by Playwright).

Skipped when /usr/bin/chromium is absent, unless JOBPULSE_REQUIRE_SERVICES=1. Saves a
screenshot of the status page to test-artifacts/status-page.png at the repository root.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import need

from .scenario import EVIL, STATES, build_app, play

pytestmark = pytest.mark.services

CHROMIUM = Path(os.environ.get("JOBPULSE_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


async def test_pages_in_chromium(serve, tmp_path):
    need(CHROMIUM.exists(), f"Chromium at {CHROMIUM} (Debian package chromium)")
    playwright_api = pytest.importorskip("playwright.async_api")
    app = build_app(tmp_path, read_tokens=("reader",))
    url = await serve(app)
    play(app)
    dialogs: list[str] = []
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            page.on("dialog", lambda dialog: dialogs.append(dialog.message))
            # without a token the sidecar answers 401 with a Basic challenge, which a
            # headless browser without credentials gives up on
            stranger = await browser.new_page()
            with pytest.raises(playwright_api.Error, match="ERR_INVALID_AUTH_CREDENTIALS"):
                await stranger.goto(f"{url}/")
            await stranger.close()
            response = await page.goto(f"{url}/?token=reader")
            assert response is not None and response.status == 200
            rows = await page.locator("#jobs tbody tr").evaluate_all(
                "rows => rows.map(r => [r.dataset.job, r.dataset.state, r.cells[1].innerText])"
            )
            assert {name: state for name, state, _ in rows} == {
                name: state for name, (state, _) in STATES.items()
            }
            badges = {name: text for name, _, text in rows}
            assert badges["report"] == "down (missed)"
            assert badges["import"] == "down (failed)"
            summary = await page.locator("#summary").inner_text()
            assert summary == "6 jobs: 2 down · 1 late · 1 new · 1 up · 1 paused"
            labels = page.locator('tr[data-job="import"] td.labels')
            assert f"note={EVIL}" in await labels.inner_text()
            assert await labels.is_visible()
            assert await page.locator("script").count() == 0
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "status-page.png"), full_page=True)

            # the filter form, submitted as a person would
            await page.select_option("select[name=state]", "down")
            await page.fill("input[name=label]", "team=data")
            await page.click("button[type=submit]")
            await page.wait_for_url("**/?state=down&label=team%3Ddata")
            shown = await page.locator("#jobs tbody tr").evaluate_all(
                "rows => rows.map(r => r.dataset.job)"
            )
            assert shown == ["report"]

            # the job page, reached by the link (the token now rides in the cookie)
            await page.goto(f"{url}/")
            await page.click('a[href="/jobs/import"]')
            await page.wait_for_url("**/jobs/import")
            failure = page.locator("#runs tbody tr").first
            assert await failure.locator(".badge").inner_text() == "failure"
            assert f"disk full {EVIL}" in await failure.locator("pre").inner_text()
            assert await failure.locator("pre").is_visible()
            assert await page.locator("#csv").get_attribute("href") == (
                "/api/v1/jobs/import/runs?format=csv"
            )
            assert await page.locator("svg rect").count() == 2
            assert await page.locator("script").count() == 0

            missing = await page.goto(f"{url}/jobs/nope")
            assert missing is not None and missing.status == 404
            assert await page.locator("h1").inner_text() == "Unknown job"
        finally:
            await browser.close()
    assert dialogs == []
