"""Highlighted code and the copy buttons in Chromium, under the page's CSP.

The mock answers a "translation engine" system prompt with the <textarea> of the question
verbatim, so a question can make it reply with a fenced Python block.
"""

from __future__ import annotations

import re

from flask import Flask
from playwright.sync_api import Locator, Page, expect

from tests.support.app import LiveServer
from tests.support.chat_http import mock_model, mock_provider, wait_for_status
from tests.support.csp import COLLECT_VIOLATIONS, READ_VIOLATIONS
from tests.support.mock_api import TAG
from tests.support.waiting import wait_for

CODE = 'def greet(name):\n    return f"Hello, {name}!"  # <b>not bold</b>'
QUESTION = f"<textarea>\nBefore the code:\n```python\n{CODE}\n```\n</textarea>"
READ_CLIPBOARD = "() => navigator.clipboard.readText()"
BEFORE_CLICK = "(the clipboard before the click)"


def color(locator: Locator) -> str:
    return locator.evaluate("(element) => getComputedStyle(element).color")


def copy_with(page: Page, button: Locator) -> str:
    """Click a copy button: it says "Copied"; the clipboard's text once the click changed it."""
    page.evaluate("(text) => navigator.clipboard.writeText(text)", BEFORE_CLICK)
    # A handle, not the locator: the button's name changes to "Copied" for a moment.
    handle = button.element_handle()
    handle.click()
    assert wait_for(lambda: handle.text_content() == "Copied"), handle.text_content()
    wait_for(lambda: page.evaluate(READ_CLIPBOARD) != BEFORE_CLICK)
    return page.evaluate(READ_CLIPBOARD)


def test_a_python_reply_is_highlighted_and_its_copy_buttons_copy_code_text_and_markdown(
    app: Flask, live_server: LiveServer, member_page: Page
) -> None:
    mock_model(mock_provider(live_server))
    page = member_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.add_init_script(COLLECT_VIOLATIONS)
    page.goto(f"{live_server.url}/")

    page.get_by_text("System prompt", exact=True).click()
    page.get_by_label("System prompt (optional)").fill("You are a translation engine.")
    box = page.get_by_role("textbox", name="Message")
    box.fill(QUESTION)
    box.press("Enter")

    reply = page.locator("#transcript .message.assistant").last
    code = reply.locator(".markdown pre code.language-python")
    expect(code).to_be_visible(timeout=10_000)
    message_id = int((reply.get_attribute("id") or "").removeprefix("message-"))
    stored = wait_for_status(message_id, {"complete"}).content

    # Highlighted on the server, coloured by highlight.css: a keyword is not the plain colour.
    keyword = code.locator(".hl-k").first
    expect(keyword).to_have_text("def")
    assert color(keyword) != color(code)
    assert color(keyword) != color(reply.locator(".markdown p").first)
    expect(code).to_have_text(CODE + "\n")

    copy_code = reply.get_by_role("button", name="Copy code")
    assert copy_with(page, copy_code) == CODE
    # …and goes back to its label.
    expect(reply.get_by_role("button", name="Copy code")).to_have_text("Copy")

    footer = reply.locator("footer.meta")
    copy_markdown = footer.get_by_role("button", name="Copy Markdown")
    assert copy_with(page, copy_markdown) == stored
    assert "```python\n" + CODE + "\n```" in stored

    # "Copy": the text as the page shows it — the code without its button, no Markdown.
    copied = copy_with(page, footer.get_by_role("button", name="Copy", exact=True))
    shown = re.escape(f"<textarea>\nBefore the code:\n\n{CODE}\n") + r"\n*</textarea>" + TAG
    assert re.fullmatch(shown, copied), copied

    question = page.locator("#transcript .message.user").last
    copy_question = question.get_by_role("button", name="Copy", exact=True)
    assert copy_with(page, copy_question) == QUESTION
    assert page.evaluate(READ_VIOLATIONS) == []

    # The page as loaded (not swapped in by the stream) gets its code buttons too.
    page.reload()
    copy_code = page.locator("#transcript .message.assistant").last.get_by_role(
        "button", name="Copy code"
    )
    assert copy_with(page, copy_code) == CODE

    assert page.evaluate(READ_VIOLATIONS) == []
    assert problems == []


def test_without_the_clipboard_api_a_copy_button_says_so(
    app: Flask, live_server: LiveServer, member_page: Page
) -> None:
    mock_model(mock_provider(live_server))
    page = member_page
    # As on a page served over plain http from another host: no navigator.clipboard.
    page.add_init_script("Object.defineProperty(navigator, 'clipboard', { value: undefined })")
    page.goto(f"{live_server.url}/")
    box = page.get_by_role("textbox", name="Message")
    box.fill("Hello")
    box.press("Enter")

    reply = page.locator("#transcript .message.assistant").last
    expect(reply.locator(".markdown")).to_contain_text("Hello")
    reply.get_by_role("button", name="Copy Markdown").click()

    expect(reply.locator("footer.meta")).to_contain_text("Copy unavailable")
    expect(reply.get_by_role("button", name="Copy Markdown")).to_be_visible()
