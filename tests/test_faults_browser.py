"""A browser that goes away mid-reply (Chromium, Playwright): the upstream request closes.

The HTTP side of failing providers is in test_faults_http.py.
"""

from __future__ import annotations

import re
import time

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from tests.support.app import LiveServer
from tests.support.chat_http import (
    LONG_PROMPT,
    mock_model,
    mock_provider,
    stream_outcomes,
    wait_for_status,
)
from tests.support.mock_api import PIECE


@pytest.mark.parametrize("leave", ["close the tab", "follow a link"])
def test_a_browser_that_leaves_mid_reply_closes_the_upstream_within_2_seconds(
    app: Flask, live_server: LiveServer, member_page: Page, leave: str
) -> None:
    mock_model(mock_provider(live_server, "chunk_delay=0.2"))
    page = member_page
    page.goto(f"{live_server.url}/")
    box = page.get_by_role("textbox", name="Message")
    box.fill(LONG_PROMPT)
    box.press("Enter")
    growing = page.locator("#transcript .message.live .reply-text")
    expect(growing).to_have_text(re.compile(rf".{{{2 * PIECE},}}"), timeout=5000)
    live = page.locator("#transcript .message.live")
    message_id = int((live.get_attribute("id") or "").removeprefix("message-"))
    shown = growing.inner_text()

    left = time.monotonic()
    if leave == "close the tab":
        page.close()
    else:
        # A boosted link: htmx swaps the page body, which must close the EventSource.
        page.get_by_role("link", name="ModelDesk", exact=True).click()
    outcomes = stream_outcomes(live_server)
    waited = time.monotonic() - left

    assert outcomes == ["disconnected"], outcomes
    assert waited < 2.0
    message = wait_for_status(message_id, {"stopped"})
    assert message.status == "stopped"
    assert message.content.startswith(shown)
    full = f"Mock response (model=mock): {' '.join(LONG_PROMPT.split())}"
    assert len(shown) <= len(message.content) < len(full)
    assert full.startswith(message.content)
    if leave == "follow a link":
        # The page it went to shows the same reply, settled as stopped.
        reply = page.locator(f"#message-{message_id}")
        expect(reply.locator(".badge", has_text="Stopped")).to_be_visible()
        expect(reply).to_contain_text(message.content)
