"""A browser that goes away mid-reply (Chromium, Playwright): the reply goes on.

The HTTP side of failing providers is in test_faults_http.py.
"""

from __future__ import annotations

import re

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
from tests.support.mock_api import PIECE, mock_reply_pattern


@pytest.mark.parametrize("leave", ["close the tab", "follow a link"])
def test_a_browser_that_leaves_mid_reply_leaves_it_running_to_its_end(
    app: Flask, live_server: LiveServer, member_page: Page, leave: str
) -> None:
    """Replies belong to the server: the page going away costs the reply nothing, and the
    conversation shown again (here, or after a boosted link) follows it to its end."""
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

    if leave == "close the tab":
        page.close()
    else:
        # A boosted link: htmx swaps the page body (closing the old EventSource) and the
        # newest conversation — this one — follows the reply again.
        page.get_by_role("link", name="ModelDesk", exact=True).click()

    message = wait_for_status(message_id, {"complete"}, within=30)
    assert re.fullmatch(mock_reply_pattern(LONG_PROMPT), message.content)
    assert message.content.startswith(shown)
    assert stream_outcomes(live_server) == ["completed"]
    if leave == "follow a link":
        reply = page.locator(f"#message-{message_id}")
        expect(reply.locator(".markdown")).to_have_text(message.content)
