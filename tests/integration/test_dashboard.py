"""The dashboard in a real headless Chromium (Debian's, driven by Playwright): sign in,
watch a bulk job's bar reach 100 %, abort another mid-way, and as a viewer find no button
that changes anything. Screenshots go to tests/artifacts/ (not committed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.integration.api_server import TOKENS, Served, bearer, serving
from tests.integration.harness import Deployment, Sim, Worker

pytestmark = pytest.mark.integration
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parents[1] / "artifacts"
UI_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def api(deployment: Deployment, worker: Worker) -> Iterator[Served]:
    with serving(deployment.settings(), api_rate_limit_rps=1000.0) as served:
        yield served


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("no /usr/bin/chromium: run .ci/install-tools")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        launched.close()


def signed_in(browser: Browser, api: Served, role: str) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(f"{api.base_url}/")
    expect(page).to_have_url(f"{api.base_url}/signin")
    page.fill("#token", TOKENS[role])
    page.click("#signin")
    expect(page.locator("#who")).to_have_text(f"{role}-bot ({role})")
    return page


def start_bulk(api: Served, sim: Sim, count: int, **params: str) -> str:
    runs = sim.seed(count, status="in_progress")
    reply = httpx.post(
        f"{api.base_url}/v1/bulk", json=[{"thread_id": t, "run_id": r} for t, r in runs],
        params=params, headers=bearer("operator"), timeout=30,
    )  # fmt: skip
    assert reply.status_code == 202, reply.text
    bulk_id: str = reply.json()["bulk_id"]
    return bulk_id


def test_an_operator_watches_a_bulk_job_finish_and_aborts_another(
    browser: Browser, api: Served, sim: Sim
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = signed_in(browser, api, "operator")
    quick = start_bulk(api, sim, 6)
    slow = start_bulk(api, sim, 30, rate_limit_rps="1")
    page.reload()

    quick_row = page.locator(f'tr[data-bulk-id="{quick}"]')
    expect(quick_row.locator(".percent")).to_have_text("100 %")
    expect(quick_row).to_have_attribute("data-finished", "true")
    expect(page.locator("#feed tbody tr").first).to_be_visible()  # the live feed got outcomes
    report = page.request.get(f"{api.base_url}/v1/bulk/{quick}/report?format=csv")
    assert report.status == 200
    assert len(report.text().splitlines()) == 7  # the header and one row per run

    slow_row = page.locator(f'tr[data-bulk-id="{slow}"]')
    expect(slow_row.locator(".counts")).not_to_have_text("0 / 30")  # under way
    asked: list[str] = []

    def accept(dialog: object) -> None:
        asked.append(dialog.message)  # type: ignore[attr-defined]
        dialog.accept()  # type: ignore[attr-defined]

    page.once("dialog", accept)
    slow_row.locator("button.abort").click()
    expect(slow_row.locator(".status")).to_have_text("aborted")
    expect(slow_row.locator("button.abort")).to_have_count(0)
    assert asked
    assert slow in asked[0]
    expect(slow_row).to_have_attribute("data-finished", "true")  # the rest ended skipped
    expect(slow_row.locator(".seg.skipped")).to_have_count(1)
    page.screenshot(path=str(ARTIFACTS / "dashboard-operator.png"))  # the viewport

    page.locator("#feed tbody tr a").first.click()  # a job id in the feed opens its lookup
    expect(page.locator("h2")).to_contain_text("done")
    cookie = next(c for c in page.context.cookies() if c["name"] == "runctl_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert TOKENS["operator"] not in cookie["value"]


def test_a_viewer_sees_no_button_that_changes_anything(
    browser: Browser, api: Served, sim: Sim
) -> None:
    running = start_bulk(api, sim, 20, rate_limit_rps="1")
    try:
        page = signed_in(browser, api, "viewer")
        row = page.locator(f'tr[data-bulk-id="{running}"]')
        expect(row).to_have_attribute("data-finished", "false")
        expect(page.locator("button.abort")).to_have_count(0)
        expect(page.locator('a[href="/dead-letters"]')).to_have_count(0)
        page.screenshot(path=str(ARTIFACTS / "dashboard-viewer.png"), full_page=True)
        assert page.request.get(f"{api.base_url}/dead-letters").status == 403
        assert page.request.post(f"{api.base_url}/v1/bulk/{running}/abort").status == 403
    finally:
        httpx.post(f"{api.base_url}/v1/bulk/{running}/abort", headers=bearer("admin"))


def test_a_wrong_token_does_not_sign_in(browser: Browser, api: Served) -> None:
    page = browser.new_page()
    page.goto(f"{api.base_url}/signin")
    page.fill("#token", "not-a-token")
    page.click("#signin")
    expect(page.locator(".error")).to_have_text("unknown token")
    assert not page.context.cookies()


@pytest.mark.parametrize(
    ("role", "path", "status", "text"),
    [
        ("viewer", "/lookup?run_id=run_dash&thread_id=thread_dash", 200, "No job in flight"),
        ("viewer", "/lookup?job_id=job_unknown", 200, "Nothing known"),
        ("viewer", "/lookup?run_id=run_1", 200, "thread_id: openai-assistants needs"),
        ("viewer", "/events", 200, "Enforcement events"),
        ("viewer", "/dead-letters", 403, "admin"),
        ("admin", "/dead-letters", 200, "Dead letters"),
        (None, "/events", 303, ""),
    ],
)
def test_the_pages_answer_each_role(
    api: Served, role: str | None, path: str, status: int, text: str
) -> None:
    with httpx.Client(base_url=api.base_url, timeout=30) as http:
        if role is not None:
            signed = http.post("/signin", data={"token": TOKENS[role]})
            assert signed.status_code == 303
        page = http.get(path)
        assert page.status_code == status
        assert text in page.text
