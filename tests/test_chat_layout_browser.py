"""The chat page's layout in Chromium, on a phone (390×844) and a desktop (1280×800): the
top bar stays in view, the composer stays small, nothing overflows sideways, and the
transcript follows a streaming reply only while the reader is at the bottom."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.support.app import LiveServer
from tests.support.chat_http import LONG_PROMPT, mock_model, mock_provider
from webapp.extensions import db as _db
from webapp.models import ChatMessage, Conversation, LLMModel

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
SIZES = pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])

PAGE_DOES_NOT_SCROLL = """() => {
  const root = document.scrollingElement;
  return window.scrollY === 0 && root.scrollHeight <= root.clientHeight
    && root.scrollWidth <= root.clientWidth;
}"""
FITS_SIDEWAYS = "(element) => element.scrollWidth <= element.clientWidth"
AT_BOTTOM = """() => {
  const log = document.getElementById("transcript");
  return log.scrollHeight - (log.scrollTop + log.clientHeight) < 2;
}"""
REPLY_TEXT_LENGTH = """() => {
  const text = document.querySelector("#transcript .message.live .reply-text");
  return text ? text.textContent.length : -1;
}"""


def long_conversation(user_id: int, model: LLMModel, turns: int = 30) -> int:
    conversation = Conversation(user_id=user_id, title="A long talk", llm_model_id=model.id)
    _db.session.add(conversation)
    _db.session.flush()
    for turn in range(turns):
        _db.session.add_all(
            [
                ChatMessage(conversation_id=conversation.id, role="user", content=f"Q{turn}"),
                ChatMessage(
                    conversation_id=conversation.id,
                    role="assistant",
                    content=f"Answer {turn}: " + "words " * 40,
                    llm_model_id=model.id,
                    model_name=model.name,
                ),
            ]
        )
    _db.session.commit()
    return conversation.id


def assert_in_viewport(page: Page, element: Locator) -> None:
    box = element.bounding_box()
    size = page.viewport_size
    assert box is not None and size is not None
    assert box["y"] >= 0 and box["y"] + box["height"] <= size["height"], (box, size)
    assert box["x"] >= 0 and box["x"] + box["width"] <= size["width"], (box, size)


def assert_fits_sideways(element: Locator) -> None:
    assert element.evaluate(FITS_SIDEWAYS), element


def top_bar(page: Page) -> Locator:
    return page.get_by_role("navigation", name="Main")


@SIZES
def test_the_top_bar_stays_in_view_on_an_empty_chat(
    live_server: LiveServer, member_page: Page, size: dict[str, int]
) -> None:
    mock_model(mock_provider(live_server))
    page = member_page
    page.set_viewport_size(size)
    page.goto(f"{live_server.url}/")

    expect(page.get_by_text("Start a new chat")).to_be_visible()
    assert_in_viewport(page, top_bar(page))
    assert page.evaluate(PAGE_DOES_NOT_SCROLL)
    assert_in_viewport(page, page.get_by_role("textbox", name="Message"))
    empty = page.locator(".transcript-empty")
    assert_in_viewport(page, empty)
    assert_fits_sideways(empty)


@SIZES
def test_the_top_bar_stays_in_view_in_a_long_conversation(
    live_server: LiveServer, member_page: Page, member: Any, size: dict[str, int]
) -> None:
    model = mock_model(mock_provider(live_server))
    conversation_id = long_conversation(member.id, model)
    page = member_page
    page.set_viewport_size(size)
    page.goto(f"{live_server.url}/c/{conversation_id}")

    last = page.locator("#transcript .message").last
    expect(last).to_contain_text("Answer 29")
    page.wait_for_function(AT_BOTTOM)  # the newest message in view...
    assert_in_viewport(page, top_bar(page))  # ...and the top bar too
    assert_in_viewport(page, page.get_by_role("textbox", name="Message"))
    assert page.evaluate(PAGE_DOES_NOT_SCROLL)
    assert_fits_sideways(page.locator("#transcript"))

    page.get_by_role("textbox", name="Message").fill("One more")
    page.get_by_role("textbox", name="Message").press("Enter")

    reply = page.locator("#transcript .message.assistant").last
    expect(reply.locator(".markdown")).to_contain_text("One more")
    page.wait_for_function(AT_BOTTOM)
    assert_in_viewport(page, top_bar(page))
    assert page.evaluate(PAGE_DOES_NOT_SCROLL)


def test_the_composer_takes_at_most_a_quarter_of_a_phone_screen(
    live_server: LiveServer, member_page: Page
) -> None:
    mock_model(mock_provider(live_server))
    page = member_page
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}/")
    composer = page.locator("#composer")
    box = page.get_by_role("textbox", name="Message")
    limit = PHONE["height"] * 0.25

    expect(box).to_be_visible()
    empty_height = composer.bounding_box()["height"]  # type: ignore[index]
    assert empty_height <= limit, empty_height

    box.fill("\n".join(f"line {n}" for n in range(20)))

    # The box grew with its text, up to a limit, and then scrolls.
    page.wait_for_function(
        "(before) => document.getElementById('composer').offsetHeight > before", arg=empty_height
    )
    assert composer.bounding_box()["height"] <= limit  # type: ignore[index]
    assert box.evaluate("(area) => area.scrollHeight > area.clientHeight")
    assert_in_viewport(page, composer)
    assert_in_viewport(page, top_bar(page))


@SIZES
def test_errors_and_the_budget_meter_fit_on_both_sizes(
    live_server: LiveServer, member_page: Page, member: Any, size: dict[str, int]
) -> None:
    model = mock_model(mock_provider(live_server), context_window_tokens=20)
    conversation = Conversation(user_id=member.id, title="Failures " * 20, llm_model_id=model.id)
    _db.session.add(conversation)
    _db.session.flush()
    budget = {"estimated_tokens": 1234, "limit_tokens": 4, "max_tokens": 20, "reserve_tokens": 16}
    long_url = "https://provider.example.com/v1/" + "x" * 120
    for code, text, details in [
        ("PROMPT_TOO_LONG", "too long", {"budget": budget}),
        ("LLM_REQUEST_FAILED", f"connection refused at {long_url}", {}),
    ]:
        _db.session.add_all(
            [
                ChatMessage(conversation_id=conversation.id, role="user", content="x" * 300),
                ChatMessage(
                    conversation_id=conversation.id,
                    role="assistant",
                    status="error",
                    error_code=code,
                    error_text=text,
                    details=details,
                    model_name=model.name,
                ),
            ]
        )
    _db.session.commit()
    page = member_page
    page.set_viewport_size(size)
    page.goto(f"{live_server.url}/c/{conversation.id}")

    page.get_by_role("textbox", name="Message").fill(LONG_PROMPT)
    meter = page.locator("#budget")
    expect(meter).to_contain_text("Too long for")

    errors = page.locator(".message-error")
    expect(errors).to_have_count(2)
    expect(errors.first).to_contain_text("estimated 1234 tokens, limit 4")
    for index in range(2):
        assert_fits_sideways(errors.nth(index))
        assert_fits_sideways(errors.nth(index).locator("xpath=.."))
    assert_fits_sideways(meter)
    assert_in_viewport(page, meter)
    assert_fits_sideways(page.locator("#conversation-title").locator("xpath=.."))
    assert page.evaluate(PAGE_DOES_NOT_SCROLL)
    assert_in_viewport(page, top_bar(page))


def test_the_transcript_follows_a_reply_only_while_the_reader_is_at_the_bottom(
    live_server: LiveServer, member_page: Page, member: Any
) -> None:
    # Slow pieces: the reply streams for several seconds, long enough to scroll during it.
    model = mock_model(mock_provider(live_server, "chunk_delay=0.3"))
    conversation_id = long_conversation(member.id, model)
    page = member_page
    page.set_viewport_size(DESKTOP)
    page.goto(f"{live_server.url}/c/{conversation_id}")
    page.wait_for_function(AT_BOTTOM)
    transcript = page.locator("#transcript")

    page.get_by_role("textbox", name="Message").fill(LONG_PROMPT)
    page.get_by_role("textbox", name="Message").press("Enter")
    # Following: text arrives, and the transcript is at its bottom after it.
    page.wait_for_function(f"() => ({REPLY_TEXT_LENGTH})() > 0")
    page.wait_for_function(AT_BOTTOM)

    # The reader scrolls up: new text no longer moves the transcript.
    transcript.hover()
    page.mouse.wheel(0, -600)
    page.wait_for_function("() => document.getElementById('transcript').scrollTop > 0")
    page.wait_for_function(f"() => !({AT_BOTTOM})()")
    scrolled_to = transcript.evaluate("(log) => log.scrollTop")
    seen = page.evaluate(REPLY_TEXT_LENGTH)
    page.wait_for_function(f"(seen) => ({REPLY_TEXT_LENGTH})() > seen", arg=seen)
    assert transcript.evaluate("(log) => log.scrollTop") == scrolled_to
    assert not page.evaluate(AT_BOTTOM)

    # Back at the bottom: following again while the rest arrives.
    page.mouse.wheel(0, 100_000)
    page.wait_for_function(AT_BOTTOM)
    seen = page.evaluate(REPLY_TEXT_LENGTH)
    assert seen > 0, "the reply ended before the test scrolled back: make it slower"
    page.wait_for_function(f"(seen) => ({REPLY_TEXT_LENGTH})() > seen", arg=seen)
    assert page.evaluate(AT_BOTTOM)
    assert_in_viewport(page, top_bar(page))
