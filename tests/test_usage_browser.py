"""The Usage page in Chromium, under the app's CSP: the chart draws (SVG styled from the
stylesheet, nothing inline), a filter swaps the panel and keeps the address, bad input is
explained, and the console stays clean (Chromium reports every CSP refusal there)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.sync_api import ConsoleMessage, Page, expect

from tests.support.app import LiveServer
from tests.support.usage import usage_event
from webapp.http_headers import CONTENT_SECURITY_POLICY
from webapp.services import usage


def test_the_usage_page_draws_its_chart_and_filters_under_the_csp(
    admin_page: Page, live_server: LiveServer, app: Any
) -> None:
    now = datetime.now(UTC)
    for hours_ago, key, status in ((1, 1, 200), (2, 1, 502), (30, 2, 200)):
        usage.record(
            usage_event(app_key_id=key, status=status, created_at=now - timedelta(hours=hours_ago))
        )
    usage.flush()
    page = admin_page
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"console {message.type}: {message.text}")

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    with page.expect_response(re.compile(r"/usage$")) as answered:
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Usage").click()
    assert answered.value.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    expect(page).to_have_title("Usage · ModelDesk")

    chart = page.get_by_role("img", name="Requests and errors per day")
    expect(chart).to_be_visible()
    bars = page.locator("svg .bar-requests")
    expect(bars).to_have_count(30)
    # Styled by usage.css: the bars are filled, and the busiest day has a real height.
    fill = bars.last.evaluate("bar => getComputedStyle(bar).fill")
    assert fill not in ("", "none", "rgb(0, 0, 0)")
    assert page.locator("svg .bar-errors").count() == 1
    heights = [
        float(h or 0) for h in bars.evaluate_all("bs => bs.map(b => b.getAttribute('height'))")
    ]
    assert max(heights) > 100
    table = page.get_by_role("table", name="Usage per key and model")
    expect(table.get_by_role("row")).to_have_count(3)  # a header and two keys

    page.get_by_label("Key").select_option(label="key #2")
    expect(table.get_by_role("row")).to_have_count(2)
    expect(table).to_contain_text("key #2")
    expect(page).to_have_url(re.compile(r"/usage\?key=key%3A2"))
    expect(page.get_by_label("Key")).to_have_value("key:2")
    csv_link = page.get_by_role("link", name="Download CSV")
    expect(csv_link).to_have_attribute("href", re.compile(r"^/usage\.csv\?key=key(:|%3A)2$"))

    assert problems == [], problems

    page.goto(f"{live_server.url}/usage?from=2026-13-45")
    expect(page.get_by_text("“2026-13-45” is not a date: use YYYY-MM-DD")).to_be_visible()
    expect(page.get_by_label("From")).to_have_attribute("aria-invalid", "true")
    # The page's own 400 is the only thing reported.
    assert [p for p in problems if "status of 400" not in p] == [], problems
