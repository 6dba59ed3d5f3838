"""The Content-Security-Policy in Chromium: no page breaks it, and htmx still works under it.

A harness init script (injected by Playwright, not by the page, so the CSP does not apply to
it) collects `securitypolicyviolation` events into `window.__csp`. An admin walks through
every page — setup, sign-out, sign-in, the chat with a streamed reply and its search,
providers, models, presets, the import page, a 404 — and on each one there must be no
violation, no console error, no page error, and the CSP header on every response. The htmx
features are then used for real (a boosted navigation, the inline enable switch, a
connection test, a streamed reply), so the test cannot pass because htmx was silently blocked.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from playwright.sync_api import ConsoleMessage, Page, Response, expect

from tests.support.app import LiveServer
from tests.support.chat_http import mock_model, mock_provider
from tests.support.csp import COLLECT_VIOLATIONS, READ_VIOLATIONS
from tests.support.factories import make_model
from tests.support.mock_api import mock_reply_pattern
from tests.support.users import ADMIN_EMAIL, PASSWORD
from webapp.extensions import db as _db
from webapp.http_headers import CONTENT_SECURITY_POLICY
from webapp.models import LLMModel, LLMPreset

CHECKED_TYPES = {"document", "xhr", "fetch", "eventsource"}


class PageWatch:
    """Everything a page reported that the CSP (or anything else) went wrong."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.problems: list[str] = []
        self.console_errors: list[str] = []
        self.responses: list[Response] = []
        self.checked_responses = 0
        self.expected_console: list[tuple[str, str]] = []
        page.add_init_script(COLLECT_VIOLATIONS)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        source = message.location.get("url") or ""
        if (source, message.text) in self.expected_console:
            self.expected_console.remove((source, message.text))
            return
        self.console_errors.append(f"on {self.page.url} (from {source}): {message.text}")

    def _response(self, response: Response) -> None:
        own = response.url.startswith(self.base_url)
        if own and response.request.resource_type in CHECKED_TYPES:
            self.responses.append(response)

    def check(self, label: str) -> None:
        """No violation or page error on the current document; every response so far
        carries the CSP. (Console errors are listed together at the end of the walk.)"""
        violations = self.page.evaluate(READ_VIOLATIONS)
        assert violations is not None, f"{label}: the violation collector did not run"
        assert violations == [], f"{label}: {violations}"
        assert self.problems == [], f"{label}: {self.problems}"
        assert self.page.evaluate("() => typeof htmx === 'object' && htmx.version") == "2.0.11"
        for response in self.responses:
            policy = response.all_headers().get("content-security-policy")
            assert policy == CONTENT_SECURITY_POLICY, (label, response.url, policy)
        self.checked_responses += len(self.responses)
        self.responses.clear()

    def visit(self, path: str, title: str | None = None, status: int = 200) -> None:
        response = self.page.goto(f"{self.base_url}{path}")
        assert response is not None and response.status == status, (path, response)
        if title is not None:
            expect(self.page).to_have_title(title)
        self.check(path)


def test_the_csp_holds_on_every_page_and_htmx_works_under_it(
    app: Flask, live_server: LiveServer, page: Page
) -> None:
    policy = CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    watch = PageWatch(page, live_server.url)

    # First run: the setup page creates the admin (and signs them in).
    watch.visit("/setup", "Set up · ModelDesk")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Confirm password").fill(PASSWORD)
    page.get_by_role("button", name="Create admin").click()
    expect(page).to_have_title("Providers · ModelDesk")
    watch.check("after setup")

    # Sign out (a boosted form) and in again.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Password")).to_be_visible()
    watch.check("signed out")
    watch.visit("/login")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("textbox", name="Message")).to_be_visible()
    watch.check("signed in")

    provider = mock_provider(live_server, "chunk_delay=0.02")
    model = mock_model(provider)
    spare = make_model(provider, model="spare", name="Spare", enabled=False)
    preset = _db.session.scalars(_db.select(LLMPreset)).one()

    # The chat: empty, then a reply streamed over SSE into the page.
    watch.visit("/", "New chat · ModelDesk")
    prompt = "Does htmx stream under a strict CSP?"
    box = page.get_by_role("textbox", name="Message")
    box.fill(prompt)
    box.press("Enter")
    reply = page.locator("#transcript .message.assistant").last
    expect(reply.locator(".markdown")).to_have_text(re.compile(mock_reply_pattern(prompt)))
    expect(reply).to_contain_text("tok/s")
    conversation_url = page.url
    assert re.search(r"/c/\d+$", conversation_url), conversation_url
    watch.check("chat after a streamed reply")
    watch.visit(conversation_url.removeprefix(live_server.url))
    expect(page.locator("#transcript .message.assistant .markdown")).to_have_text(
        re.compile(mock_reply_pattern(prompt))
    )
    watch.check("the conversation reloaded")

    # Search: typing swaps the sidebar's list (htmx); the form's plain GET is a page.
    page.get_by_role("searchbox", name="Search conversations").fill("strict")
    expect(page.locator("#conversation-list .hit-title mark")).to_have_text("strict")
    watch.check("the sidebar's search")
    watch.visit("/chat/search?q=strict", f"{prompt} · ModelDesk")

    # A boosted navigation swaps the body in place: the same document, no reload.
    page.evaluate("() => { window.__sameDocument = true; }")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Models").click()
    expect(page).to_have_title("Models · ModelDesk")
    assert page.evaluate("() => window.__sameDocument === true"), "hx-boost did not swap"
    watch.check("boosted navigation to the models page")

    # The enable switch swaps its row (htmx POST with the CSRF header), and says so.
    watch.visit("/models/", "Models · ModelDesk")
    switch = page.get_by_role("switch", name="Enabled: Spare")
    expect(switch).to_have_attribute("aria-checked", "false")
    switch.click()
    expect(page.get_by_role("switch", name="Enabled: Spare")).to_have_attribute(
        "aria-checked", "true"
    )
    _db.session.expire_all()
    assert _db.session.get(LLMModel, spare.id).enabled is True
    page.get_by_role("button", name="Test connection to Mock").click()
    row = page.locator("tr", has_text="Mock")
    expect(row.get_by_role("status")).to_have_text(re.compile(r"OK · \d+(\.\d+)? ms"))
    watch.check("models page after htmx swaps")

    pages: list[tuple[str, str]] = [
        ("/providers/", "Providers · ModelDesk"),
        ("/providers/new", "New provider · ModelDesk"),
        (f"/providers/{provider.id}/edit", f"Edit {provider.name} · ModelDesk"),
        ("/models/new", "New model · ModelDesk"),
        (f"/models/{model.id}/edit", f"Edit {model.name} · ModelDesk"),
        (f"/models/{model.id}/presets/", f"Presets · {model.name} · ModelDesk"),
        (f"/models/{model.id}/presets/new", f"New preset · {model.name} · ModelDesk"),
        (
            f"/models/{model.id}/presets/{preset.id}/edit",
            f"Edit {preset.name} · {model.name} · ModelDesk",
        ),
        ("/users/", "Users · ModelDesk"),
        ("/apikeys/", "API keys · ModelDesk"),
    ]
    for path, title in pages:
        watch.visit(path, title)
    # The import page asks the provider (the mock) for its models while rendering.
    watch.visit(f"/providers/{provider.id}/import", f"Import models · {provider.name} · ModelDesk")
    expect(page.get_by_role("checkbox", name="mock")).to_be_disabled()

    # An error page: Chromium reports the page's own 404 status; nothing else may go wrong.
    missing = f"{live_server.url}/no-such-page"
    watch.expected_console.append(
        (missing, "Failed to load resource: the server responded with a status of 404 (NOT FOUND)")
    )
    watch.visit("/no-such-page", status=404)
    expect(page.get_by_text("There is nothing here.")).to_be_visible()
    assert watch.expected_console == [], "the 404 was not reported as expected"

    # Every kind of response was seen and checked: pages, htmx requests, the reply stream.
    assert watch.checked_responses >= len(pages) + 8
    assert watch.console_errors == [], "console errors:\n" + "\n".join(watch.console_errors)


def test_an_inline_script_would_be_reported(
    app: Flask, live_server: LiveServer, page: Page, admin: Any
) -> None:
    """The harness itself: an inline script injected into a page is blocked and collected,
    so an empty violation list above means something."""
    watch = PageWatch(page, live_server.url)
    watch.visit("/login")
    page.evaluate(
        """() => {
        const script = document.createElement("script");
        script.textContent = "window.__ran = true";
        document.body.append(script);
        }"""
    )
    violations = page.evaluate(READ_VIOLATIONS)
    assert [v["directive"] for v in violations] == ["script-src-elem"]
    assert page.evaluate("() => window.__ran") is None
