"""The chat composer's "Show request" in a real browser (admins; nothing is sent)."""

from __future__ import annotations

import json

from playwright.sync_api import Page, expect

from tests.support.app import LiveServer
from tests.support.chat_http import mock_model, mock_provider

COLLECT_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__csp.push(event.violatedDirective + " " + event.blockedURI);
});
"""


def test_show_request_reveals_the_body_the_draft_would_send(
    admin_page: Page, live_server: LiveServer
) -> None:
    mock_model(mock_provider(live_server))
    page = admin_page
    page.add_init_script(COLLECT_VIOLATIONS)
    page.goto(f"{live_server.url}/")
    page.get_by_role("textbox", name="Message").fill("What would you send?")

    page.get_by_text("Show request").click()

    shown = page.locator(".request-preview .request-json")
    expect(shown).to_contain_text('"url": "')
    request = json.loads(shown.inner_text())
    assert request["body"]["messages"] == [{"role": "user", "content": "What would you send?"}]
    assert request["body"]["temperature"] == 0
    assert request["headers"]["Authorization"] == "[redacted]"
    # Open, it follows the draft as it is typed, like the budget meter.
    page.get_by_role("textbox", name="Message").fill("Changed my mind")
    expect(shown).to_contain_text("Changed my mind")
    # Only a preview: no message was sent.
    expect(page.locator("#transcript .message")).to_have_count(0)
    assert page.evaluate("window.__csp") == []
