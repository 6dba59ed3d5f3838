"""The chat picker in Chromium: providers as optgroups, typing filters the models, a member
cannot pick a model that needs a key, an admin sees the fix link — no console errors."""

from __future__ import annotations

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.support.app import LiveServer
from tests.support.factories import make_model, make_provider
from webapp.models import LLMModel

# Which options and optgroups the filter left visible, as the page has them.
VISIBLE_CHOICES = """() => Array.from(document.querySelectorAll("#llm_model_id optgroup"))
  .filter((group) => !group.hidden)
  .map((group) => [group.label, Array.from(group.querySelectorAll("option"))
    .filter((option) => !option.hidden).map((option) => option.value)])"""


@pytest.fixture
def models(app: Flask) -> dict[str, LLMModel]:
    local = make_provider(name="Local")
    hosted = make_provider(name="Hosted", requires_api_key=True)
    return {
        "llama": make_model(local, model="llama", name="Llama", enabled=True),
        "qwen": make_model(local, model="qwen", name="Qwen", enabled=True),
        "gpt": make_model(hosted, model="gpt", name="GPT", enabled=True),
    }


def console_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def test_a_member_filters_by_typing_and_cannot_pick_a_model_that_needs_a_key(
    live_server: LiveServer, member_page: Page, models: dict[str, LLMModel]
) -> None:
    page = member_page
    errors = console_errors(page)
    page.goto(f"{live_server.url}/")
    picker = page.get_by_label("Model", exact=True)
    ids = {name: str(model.id) for name, model in models.items()}

    assert page.evaluate(VISIBLE_CHOICES) == [
        ["Hosted", [ids["gpt"]]],
        ["Local", [ids["llama"], ids["qwen"]]],
    ]
    expect(picker.locator(f'option[value="{ids["gpt"]}"]')).to_be_disabled()
    expect(picker.locator(f'option[value="{ids["gpt"]}"]')).to_contain_text(
        "needs an API key — ask an admin"
    )
    with pytest.raises(PlaywrightTimeout, match="option being selected is not enabled"):
        picker.select_option(ids["gpt"], timeout=1000)
    expect(picker).to_have_value(ids["llama"])

    box = page.get_by_role("textbox", name="Message")
    box.fill("Do not send me yet")
    page.get_by_role("searchbox", name="Filter models").fill("qw")
    page.wait_for_function(f"() => {VISIBLE_CHOICES}().length === 1")
    assert page.evaluate(VISIBLE_CHOICES) == [["Local", [ids["qwen"]]]]

    page.get_by_role("searchbox", name="Filter models").press("Enter")
    expect(box).to_have_value("Do not send me yet")
    expect(page.locator("#transcript .message")).to_have_count(0)
    assert errors == []


def test_an_admin_sees_the_mark_and_a_link_to_fix_the_provider(
    live_server: LiveServer, admin_page: Page, models: dict[str, LLMModel]
) -> None:
    page = admin_page
    errors = console_errors(page)
    page.goto(f"{live_server.url}/")
    picker = page.get_by_label("Model", exact=True)
    gpt = models["gpt"]
    fix = page.get_by_role("link", name="Fix Hosted")

    expect(fix).to_be_hidden()
    picker.select_option(str(gpt.id))

    expect(fix).to_be_visible()
    expect(picker.locator(f'option[value="{gpt.id}"]')).to_contain_text("⚠ GPT")
    fix.click()
    expect(page).to_have_url(f"{live_server.url}/providers/{gpt.llm_provider_id}/edit")
    expect(page.get_by_label("Needs an API key")).to_be_checked()
    assert errors == []
