"""The sidebar's search and the exports in Chromium: typing narrows the list, emptying the
box brings it back, the form works without JavaScript, the export links download files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect

from tests.support.app import LiveServer
from webapp.extensions import db as _db
from webapp.models import ChatMessage, Conversation


def conversation_of(user_id: int, title: str, text: str) -> int:
    conversation = Conversation(user_id=user_id, title=title)
    _db.session.add(conversation)
    _db.session.flush()
    _db.session.add(ChatMessage(conversation_id=conversation.id, role="user", content=text))
    _db.session.commit()
    return conversation.id


def listed_titles(page: Page) -> Any:
    return page.locator("#conversation-list li > a")


def test_typing_narrows_the_list_and_emptying_the_box_brings_it_back(
    live_server: LiveServer, member_page: Page, member: Any
) -> None:
    conversation_of(member.id, "Garden plans", "Which roses grow in shade?")
    conversation_of(member.id, "Tax return", "Where are the receipts?")
    conversation_of(member.id, "Holiday", "Rome or Lisbon in May?")
    page = member_page
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{live_server.url}/")
    expect(listed_titles(page)).to_have_count(3)
    search = page.get_by_role("searchbox", name="Search conversations")

    search.press_sequentially("ro", delay=30)
    # "ro" starts words in two conversations: "roses" and "Rome".
    expect(listed_titles(page)).to_have_count(2)
    search.press_sequentially("s", delay=30)
    expect(listed_titles(page)).to_have_count(1)
    expect(listed_titles(page)).to_contain_text("Garden plans")
    expect(page.locator("#conversation-list mark")).to_have_text("roses")

    listed_titles(page).first.click()
    expect(page).to_have_title("Garden plans · ModelDesk")
    # The title changes at the swap; htmx wires up the new page's search box when it settles
    # (20 ms later): typing before that would go unheard.
    expect(page.locator(".htmx-settling")).to_have_count(0)

    search = page.get_by_role("searchbox", name="Search conversations")
    search.fill("lisbon")
    expect(listed_titles(page)).to_have_text(["HolidayRome or Lisbon in May?"])
    search.fill("")
    expect(listed_titles(page)).to_have_count(3)
    # The full list again, with the open conversation marked and its menus back.
    expect(page.locator("#conversation-list [aria-current=page]")).to_have_text("Garden plans")
    expect(page.locator("#conversation-list .conversation-actions")).to_have_count(3)

    search.fill('"(( NEAR *')
    expect(page.locator("#conversation-list")).to_contain_text("No conversation matches")


def test_the_search_form_works_without_javascript(
    live_server: LiveServer, member_page: Page, member: Any, browser: Browser
) -> None:
    garden = conversation_of(member.id, "Garden plans", "Which roses grow in shade?")
    conversation_of(member.id, "Tax return", "Where are the receipts?")
    context = browser.new_context(java_script_enabled=False)
    context.add_cookies(member_page.context.cookies())  # type: ignore[arg-type]
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/c/{garden}")
        search = page.get_by_role("searchbox", name="Search conversations")
        search.fill("receipts")
        search.press("Enter")

        expect(page).to_have_url(
            f"{live_server.url}/chat/search?conversation_id={garden}&q=receipts"
        )
        expect(page).to_have_title("Garden plans · ModelDesk")  # still the open conversation
        expect(listed_titles(page)).to_have_count(1)
        expect(listed_titles(page)).to_contain_text("Tax return")
        expect(page.get_by_role("searchbox", name="Search conversations")).to_have_value("receipts")
    finally:
        context.close()


def test_the_export_links_download_markdown_and_json(
    live_server: LiveServer, member_page: Page, member: Any, tmp_path: Path
) -> None:
    conversation_id = conversation_of(member.id, "Garden plans", "Which roses?")
    page = member_page
    page.goto(f"{live_server.url}/c/{conversation_id}")
    export = page.get_by_role("navigation", name="Export")

    with page.expect_download() as markdown:
        export.get_by_role("link", name="Markdown").click()
    with page.expect_download() as document:
        export.get_by_role("link", name="JSON").click()

    assert markdown.value.suggested_filename == "garden-plans.md"
    saved = tmp_path / "export.md"
    markdown.value.save_as(saved)
    assert saved.read_text().startswith("# Garden plans\n\n## You\n\nWhich roses?")
    assert document.value.suggested_filename == "garden-plans.json"
    saved = tmp_path / "export.json"
    document.value.save_as(saved)
    assert json.loads(saved.read_text())["messages"][0]["content"] == "Which roses?"
    # Still the same page: htmx did not take the link over.
    expect(page).to_have_title("Garden plans · ModelDesk")
