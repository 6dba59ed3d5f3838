"""The provider form shows where requests go as you type, and offers the one-click fix for
a base URL that already ends with the API prefix."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.support.app import LiveServer


def test_the_request_urls_follow_the_typing_and_a_doubled_prefix_is_fixed(
    admin_page: Page, live_server: LiveServer
) -> None:
    page = admin_page
    page.goto(f"{live_server.url}/providers/new")
    page.get_by_label("Base URL").fill("https://llm.example.com/")
    page.get_by_label("API prefix").fill("/v1")
    expect(page.get_by_text("https://llm.example.com/v1/chat/completions")).to_be_visible()
    expect(page.get_by_text("https://llm.example.com/v1/models")).to_be_visible()
    fix = page.get_by_role("button", name="Use https://llm.example.com as the base URL")
    expect(fix).to_be_hidden()

    page.get_by_label("Base URL").fill("https://llm.example.com/v1")
    expect(page.get_by_text("https://llm.example.com/v1/v1/chat/completions")).to_be_visible()
    fix.click()
    expect(page.get_by_label("Base URL")).to_have_value("https://llm.example.com")
    expect(page.get_by_text("https://llm.example.com/v1/chat/completions")).to_be_visible()
    expect(fix).to_be_hidden()


def test_a_doubled_prefix_is_refused_with_the_fix_offered(
    admin_page: Page, live_server: LiveServer
) -> None:
    page = admin_page
    page.goto(f"{live_server.url}/providers/new")
    page.get_by_label("Name").fill("Doubled")
    page.get_by_label("Base URL").fill("https://llm.example.com/api/v1")
    page.get_by_label("API prefix").fill("/v1")
    page.get_by_role("button", name="Create provider").click()
    expect(page.get_by_text("Already ends with the API prefix /v1")).to_be_visible()
    page.get_by_role("button", name="Use https://llm.example.com/api as the base URL").click()
    page.get_by_role("button", name="Create provider").click()
    expect(page.get_by_role("status").filter(has_text="Created provider Doubled.")).to_be_visible()
