"""The last turn in Chromium (Playwright): regenerate and flip between the replies, edit the
question and ask again, continue a stopped reply.

The mock API runs in the live server; its replies end with a random tag, so two answers to
the same question differ.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from playwright.sync_api import Page, expect

from tests.support.app import LiveServer
from tests.support.chat_http import LONG_PROMPT, mock_model, mock_provider, wait_for_status
from tests.support.mock_api import TAG, mock_reply_body
from webapp.services.alternatives import CONTINUE_INSTRUCTION


def last_reply(page: Page) -> Any:
    return page.locator("#transcript .message.assistant").last


def send(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")


def finished_text(page: Page) -> str:
    """The last reply's text once it is final and its controls are there."""
    reply = last_reply(page)
    expect(reply.get_by_role("button", name="Regenerate", exact=True)).to_be_visible(timeout=10_000)
    return reply.locator(".markdown").inner_text()


def test_regenerate_keeps_the_old_reply_as_an_alternative_to_flip_back_to(
    app: Flask, live_server: LiveServer, member_page: Page
) -> None:
    provider = mock_provider(live_server)
    mock_model(provider)
    mock_model(provider, model="mock-basic", name="Mock Basic")
    page = member_page
    page.goto(f"{live_server.url}/")
    send(page, "What is htmx?")
    first = finished_text(page)
    assert first.startswith(mock_reply_body("What is htmx?"))

    reply = last_reply(page)
    reply.get_by_text("Regenerate with…").click()
    reply.get_by_label("Model and preset").select_option(label="Mock Basic · Default")
    reply.get_by_role("button", name="Regenerate with this one").click()

    expect(last_reply(page).locator(".alternative-count")).to_have_text("2/2", timeout=10_000)
    second = finished_text(page)
    assert second.startswith(mock_reply_body("What is htmx?", model="mock-basic"))
    expect(page.locator("#transcript .message.assistant")).to_have_count(1)

    last_reply(page).get_by_role("button", name="Previous reply").click()
    expect(last_reply(page).locator(".alternative-count")).to_have_text("1/2")
    expect(last_reply(page).locator(".markdown")).to_have_text(first)

    page.reload()
    expect(last_reply(page).locator(".alternative-count")).to_have_text("1/2")
    expect(last_reply(page).locator(".markdown")).to_have_text(first)
    last_reply(page).get_by_role("button", name="Next reply").click()
    expect(last_reply(page).locator(".alternative-count")).to_have_text("2/2")
    expect(last_reply(page).locator(".markdown")).to_have_text(second)


def test_edit_and_resend_shows_the_new_question_and_a_new_reply(
    app: Flask, live_server: LiveServer, member_page: Page
) -> None:
    mock_model(mock_provider(live_server))
    page = member_page
    page.goto(f"{live_server.url}/")
    send(page, "What is hmtx?")
    finished_text(page)

    question = page.locator("#transcript .message.user").last
    question.get_by_text("Edit", exact=True).click()
    box = question.get_by_role("textbox", name="Edit message")
    expect(box).to_have_value("What is hmtx?")
    box.fill("   ")
    question.get_by_role("button", name="Save and send").click()
    question = page.locator("#transcript .message.user").last
    expect(question.locator(".field-error")).to_have_text("Type a message first.")
    expect(question.get_by_role("textbox", name="Edit message")).to_have_value("   ")

    question.get_by_role("textbox", name="Edit message").fill("What is htmx?")
    question.get_by_role("button", name="Save and send").click()

    expect(page.locator("#transcript .message.user .user-text")).to_have_text(["What is htmx?"])
    assert finished_text(page).startswith(mock_reply_body("What is htmx?"))
    expect(page.locator("#transcript .message.assistant")).to_have_count(1)
    expect(last_reply(page).locator(".alternative-count")).to_have_count(0)
    page.reload()
    expect(page.locator("#transcript .message.user .user-text")).to_have_text(["What is htmx?"])
    expect(page.locator("#transcript .message.assistant")).to_have_count(1)


def test_continue_after_stop_appends_to_the_same_reply(
    app: Flask, live_server: LiveServer, member_page: Page
) -> None:
    mock_model(mock_provider(live_server, "chunk_delay=0.15"))
    page = member_page
    page.goto(f"{live_server.url}/")
    send(page, LONG_PROMPT)
    expect(page.locator("#transcript .reply-text").last).not_to_be_empty(timeout=5000)
    page.get_by_role("button", name="Stop").click()
    reply = last_reply(page)
    expect(reply.locator(".badge", has_text="Stopped")).to_be_visible(timeout=5000)
    stopped_id = int((reply.get_attribute("id") or "").removeprefix("message-"))
    cut = wait_for_status(stopped_id, {"stopped"}).content

    reply.get_by_role("button", name="Continue").click()

    reply = last_reply(page)
    expect(reply.locator(".alternative-count")).to_have_text("2/2", timeout=15_000)
    text = reply.locator(".markdown").inner_text()
    assert text.startswith(cut.strip())
    # The mock answers the last user message: the instruction that asks to carry on.
    assert re.search(re.escape(mock_reply_body(CONTINUE_INSTRUCTION)) + TAG + "$", text)
    expect(page.locator("#transcript .message.assistant")).to_have_count(1)
    expect(reply.get_by_role("button", name="Continue")).to_have_count(0)
