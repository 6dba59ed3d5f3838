"""Probe capabilities and apply them, in a real browser (Playwright, system Chromium)."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.support.app import LiveServer
from tests.support.chat_http import mock_provider
from tests.support.factories import make_model
from webapp.extensions import db
from webapp.models import LLMModel

COLLECT_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__csp.push(event.violatedDirective + " " + event.blockedURI);
});
"""


def test_probe_then_apply_the_observed_flags(admin_page: Page, live_server: LiveServer) -> None:
    # The mock can do everything; this model claims streaming only.
    model = make_model(
        mock_provider(live_server),
        model="mock",
        name="Mock",
        key="mock",
        enabled=True,
        supports_streaming=True,
    )
    page = admin_page
    page.add_init_script(COLLECT_VIOLATIONS)
    page.goto(f"{live_server.url}/models/{model.id}/edit")
    expect(page.get_by_label("Tool calling")).not_to_be_checked()

    page.get_by_role("button", name="Probe capabilities").click()

    table = page.get_by_role("table").filter(has_text="Observed")
    tool_row = table.get_by_role("row", name="Tool calling")
    expect(tool_row.get_by_role("cell").nth(0)).to_have_text("no")
    expect(tool_row.get_by_role("cell").nth(1)).to_have_text("yes")
    expect(tool_row).to_contain_text("it called get_weather with valid JSON arguments")
    expect(page.locator("#probed-at time")).to_be_visible()

    page.get_by_role("button", name="Apply observed flags").click()

    expect(
        page.get_by_role("status").filter(has_text="Applied the observed capabilities to Mock")
    ).to_be_visible()
    expect(page.get_by_label("Tool calling")).to_be_checked()
    expect(page.get_by_label("JSON schema responses")).to_be_checked()
    assert page.evaluate("window.__csp") == []
    db.session.expire_all()
    assert all(db.session.get(LLMModel, model.id).capabilities.values())
