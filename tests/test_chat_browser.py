"""The chat page in Chromium (Playwright): streaming, reload, Stop, errors, the keyboard.

The mock API runs in the live server; a provider header asks it to pause between pieces
(`chunk_delay`) so a reply takes long enough to be watched growing.
"""

from __future__ import annotations

import re
from typing import Any

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
from tests.support.mock_api import mock_reply_pattern
from tests.support.waiting import wait_for
from webapp.extensions import db as _db
from webapp.models import ChatMessage
from webapp.services import run_chat

# The length of the streaming reply's text every 80 ms, until the final rendering replaces it.
SAMPLE_REPLY_LENGTHS = """() => new Promise((resolve) => {
  const lengths = [];
  const timer = setInterval(() => {
    const text = document.querySelector("#transcript .message.live .reply-text");
    lengths.push(text ? text.textContent.length : -1);
    if ((lengths.some((n) => n > 0) && !text) || lengths.length > 100) {
      clearInterval(timer);
      resolve(lengths);
    }
  }, 80);
})"""


def last_reply(page: Page) -> Any:
    return page.locator("#transcript .message.assistant").last


def reply_id(page: Page) -> int:
    element_id = last_reply(page).get_attribute("id") or ""
    return int(element_id.removeprefix("message-"))


def send(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")


def test_the_reply_grows_while_it_streams_and_survives_a_reload(
    app: Flask, live_server: LiveServer, member_page: Page
) -> None:
    mock_model(mock_provider(live_server, "chunk_delay=0.08"))
    page = member_page
    page.goto(f"{live_server.url}/")

    send(page, LONG_PROMPT)
    # Sampled in the page itself, so the test's own round trips cannot blur the growth.
    lengths = page.evaluate(SAMPLE_REPLY_LENGTHS)

    growing = [length for length in lengths if length > 0]
    assert growing == sorted(growing), lengths
    assert len(set(growing)) >= 3, lengths
    reply = last_reply(page)
    expect(reply.locator(".markdown")).to_be_visible(timeout=10_000)
    final = reply.locator(".markdown").inner_text()
    assert re.fullmatch(mock_reply_pattern(LONG_PROMPT), final)
    expect(reply).to_contain_text("tok/s")
    expect(reply).to_contain_text("first token")
    expect(page.get_by_role("textbox", name="Message")).to_be_focused()
    expect(page.get_by_role("textbox", name="Message")).to_have_value("")

    page.reload()

    expect(page.locator("#transcript .message.user .user-text")).to_have_text(LONG_PROMPT)
    expect(last_reply(page).locator(".markdown")).to_have_text(final)
    expect(page.get_by_role("link", name=LONG_PROMPT[:20])).to_be_visible()
    title = page.title()
    assert title.startswith("Streaming replies arrive") and title.endswith("· ModelDesk")


def test_stop_ends_the_reply_and_the_upstream_request(
    app: Flask, live_server: LiveServer, member_page: Page
) -> None:
    mock_model(mock_provider(live_server, "chunk_delay=0.15"))
    page = member_page
    page.goto(f"{live_server.url}/")

    send(page, LONG_PROMPT)
    expect(page.locator("#transcript .reply-text").last).not_to_be_empty(timeout=5000)
    message_id = reply_id(page)
    page.get_by_role("button", name="Stop").click()

    reply = last_reply(page)
    expect(reply.locator(".badge", has_text="Stopped")).to_be_visible(timeout=5000)
    text = reply.locator(".markdown")
    shown = text.inner_text()
    # Nothing more arrives: the text stays as it was over three chunk intervals.
    assert not wait_for(lambda: text.inner_text() != shown, timeout=0.5)
    message = wait_for_status(message_id, {"stopped"})
    assert message.status == "stopped"
    assert 0 < len(message.content) < len(LONG_PROMPT)
    assert message.content in shown
    assert stream_outcomes(live_server) == ["disconnected"]
    # The composer is free again.
    send(page, "next question")
    expect(page.locator("#transcript .message.user .user-text").last).to_have_text("next question")
    expect(last_reply(page).locator(".markdown")).to_contain_text("next question")


def test_prompt_too_long_shows_its_four_numbers_and_is_not_sent(
    app: Flask, live_server: LiveServer, member_page: Page
) -> None:
    model = mock_model(mock_provider(live_server), context_window_tokens=20)
    page = member_page
    page.goto(f"{live_server.url}/")
    box = page.get_by_role("textbox", name="Message")

    box.fill(LONG_PROMPT)
    reason = page.locator("#budget-reason")
    expect(reason).to_contain_text("Too long for Mock", timeout=5000)
    box.press("Enter")

    # The numbers the engine refuses the message with: estimate, limit, window, reserve.
    refusal = run_chat(model, user_text=LONG_PROMPT)
    assert refusal.code == "PROMPT_TOO_LONG"
    budget = refusal.value
    expect(reason).to_contain_text(
        f"≈ {budget['estimated_tokens']} / {budget['limit_tokens']} tokens (context window "
        f"{budget['max_tokens']} − {budget['reserve_tokens']} reserved for the reply)"
    )
    assert budget["max_tokens"] == 20
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    expect(box).to_have_value(LONG_PROMPT)
    _db.session.expire_all()
    assert _db.session.scalars(_db.select(ChatMessage)).all() == []


def test_enter_sends_and_shift_enter_starts_a_new_line(
    app: Flask, live_server: LiveServer, member_page: Page
) -> None:
    mock_model(mock_provider(live_server))
    page = member_page
    page.goto(f"{live_server.url}/")
    box = page.get_by_role("textbox", name="Message")

    box.click()
    page.keyboard.type("first line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    expect(box).to_have_value("first line\nsecond line")
    page.keyboard.press("Enter")

    expect(page.locator("#transcript .message.user .user-text")).to_have_text(
        "first line\nsecond line"
    )
    expect(last_reply(page).locator(".markdown")).to_contain_text(
        "first line second line", timeout=5000
    )
    box = page.get_by_role("textbox", name="Message")
    expect(box).to_have_value("")
    expect(box).to_be_focused()


def test_a_reply_survives_a_reload_mid_stream_and_shows_every_character_once(
    app: Flask, live_server: LiveServer, member_page: Page
) -> None:
    mock_model(mock_provider(live_server, "chunk_delay=0.1"))
    page = member_page
    page.goto(f"{live_server.url}/")
    send(page, LONG_PROMPT)
    expect(page.locator("#transcript .reply-text").last).not_to_be_empty(timeout=5000)
    message_id = reply_id(page)

    page.reload()  # the page goes away mid-reply; the reply does not

    reply = last_reply(page)
    expect(reply.locator(".reply-text")).not_to_be_empty(timeout=5000)
    expect(reply.locator(".markdown")).to_be_visible(timeout=15_000)
    assert re.fullmatch(mock_reply_pattern(LONG_PROMPT), reply.locator(".markdown").inner_text())
    assert wait_for_status(message_id, {"complete"}).status == "complete"
    assert stream_outcomes(live_server) == ["completed"]


def test_a_second_tab_follows_a_reply_and_its_stop_ends_it_in_both(
    app: Flask, live_server: LiveServer, member_page: Page
) -> None:
    mock_model(mock_provider(live_server, "chunk_delay=0.15"))
    page = member_page
    page.goto(f"{live_server.url}/")
    send(page, LONG_PROMPT)
    expect(page.locator("#transcript .reply-text").last).not_to_be_empty(timeout=5000)
    message_id = reply_id(page)
    second = page.context.new_page()
    second.goto(page.url)
    expect(last_reply(second).locator(".reply-text")).not_to_be_empty(timeout=5000)

    last_reply(second).get_by_role("button", name="Stop").click()

    for tab in (second, page):
        expect(last_reply(tab).locator(".badge", has_text="Stopped")).to_be_visible(timeout=10_000)
    message = wait_for_status(message_id, {"stopped"})
    assert 0 < len(message.content) < len(LONG_PROMPT)
    for tab in (second, page):
        assert last_reply(tab).locator(".markdown").inner_text() == message.content.strip()
    assert stream_outcomes(live_server) == ["disconnected"]
    second.close()
