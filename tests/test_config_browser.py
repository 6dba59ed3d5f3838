"""The configuration pages in a real browser: Playwright drives the system Chromium against the
app served on a loopback port. One flow per test; elements are found by role and label."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from tests.support.app import LiveServer
from tests.support.chat_http import mock_provider
from tests.support.factories import make_model, make_provider
from tests.support.net import SilentUpstream, closed_port_url
from tests.support.waiting import wait_for
from webapp.extensions import db
from webapp.models import LLMModel, LLMPreset, LLMProvider

pytestmark = pytest.mark.usefixtures("live_server")


def test_create_provider_then_model_then_preset(admin_page: Page, live_server: LiveServer) -> None:
    page = admin_page
    page.goto(f"{live_server.url}/providers/")
    expect(page).to_have_title("Providers · ModelDesk")
    expect(page.get_by_text("No providers yet")).to_be_visible()
    page.get_by_role("link", name="Add provider").first.click()
    expect(page).to_have_title("New provider · ModelDesk")
    page.get_by_label("Name").fill("Local mock")
    page.get_by_label("Base URL").fill(live_server.url)
    page.get_by_label("API prefix").fill("/mock_llm/v1")
    page.get_by_label("API key", exact=True).fill("sk-browser-test-4321")
    page.get_by_role("button", name="Create provider").click()
    expect(
        page.get_by_role("status").filter(has_text="Created provider Local mock.")
    ).to_be_visible()
    expect(page.get_by_role("cell", name="…4321")).to_be_visible()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Models").click()
    expect(page).to_have_title("Models · ModelDesk")
    page.get_by_role("link", name="Add model").first.click()
    expect(page).to_have_title("New model · ModelDesk")
    page.get_by_label("Provider").select_option(label="Local mock")
    page.get_by_label("Model id").fill("mock")
    page.get_by_label("Name", exact=False).fill("Mock model")
    page.get_by_label("Streaming").check()
    page.get_by_role("button", name="Create model").click()
    expect(page.get_by_role("status").filter(has_text="Created model Mock model.")).to_be_visible()
    row = page.locator("tr", has_text="Mock model")
    expect(row.get_by_role("switch", name="Enabled: Mock model")).to_have_attribute(
        "aria-checked", "false"
    )

    row.get_by_role("link", name="0 presets").click()
    expect(page).to_have_title("Presets · Mock model · ModelDesk")
    page.get_by_role("link", name="Add preset").first.click()
    expect(page).to_have_title("New preset · Mock model · ModelDesk")
    page.get_by_label("Name").fill("Careful")
    expect(page.get_by_label("Key")).to_have_value("default")
    page.get_by_label("Option overrides (JSON)").fill('{"temperature": 0.1}')
    page.get_by_role("button", name="Create preset").click()
    preset_row = page.locator("tr", has_text="Careful")
    expect(preset_row.get_by_text("default", exact=True).first).to_be_visible()
    expect(preset_row.get_by_text('{"temperature": 0.1}')).to_be_visible()

    db.session.expire_all()
    preset = db.session.scalars(select(LLMPreset)).one()
    assert preset.llm_options_overrides == {"temperature": 0.1}
    assert preset.llm_model.llm_provider.api_key == "sk-browser-test-4321"


def test_validation_error_keeps_the_typed_text(admin_page: Page, live_server: LiveServer) -> None:
    page = admin_page
    page.goto(f"{live_server.url}/providers/new")
    typed_headers = '{"X-Title": "ModelDesk", oops}'
    page.get_by_label("Name").fill("Typed provider")
    page.get_by_label("Base URL").fill("https://llm.example.com")
    page.get_by_label("Headers (JSON)").fill(typed_headers)
    page.get_by_label("Message overhead (tokens)").fill("three")
    page.get_by_role("button", name="Create provider").click()

    headers = page.get_by_label("Headers (JSON)")
    expect(page.get_by_role("alert")).to_contain_text("Nothing was saved")
    expect(headers).to_have_value(typed_headers)
    expect(headers).to_have_attribute("aria-invalid", "true")
    expect(headers).to_have_accessible_description(re.compile("Is not valid JSON"))
    expect(page.get_by_label("Name")).to_have_value("Typed provider")
    expect(page.get_by_label("Message overhead (tokens)")).to_have_value("three")
    expect(page.get_by_text("Must be a whole number")).to_be_visible()
    db.session.expire_all()
    assert db.session.scalars(select(LLMProvider)).first() is None


def test_toggle_enabled_in_place(admin_page: Page, live_server: LiveServer) -> None:
    model = make_model(mock_provider(live_server), model="mock", name="Mock", enabled=False)
    page = admin_page
    page.goto(f"{live_server.url}/models/")
    switch = page.get_by_role("switch", name="Enabled: Mock")
    expect(switch).to_have_attribute("aria-checked", "false")
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(switch).to_be_focused()
    page.reload()
    expect(page.get_by_role("switch", name="Enabled: Mock")).to_have_attribute(
        "aria-checked", "true"
    )
    db.session.expire_all()
    assert db.session.get(LLMModel, model.id).enabled is True


def test_connection_test_success_shows_latency(admin_page: Page, live_server: LiveServer) -> None:
    make_model(mock_provider(live_server), model="mock", name="Mock")
    page = admin_page
    page.goto(f"{live_server.url}/models/")
    row = page.locator("tr", has_text="Mock")
    expect(row.locator(".tested")).to_contain_text("not tested")
    row.get_by_role("button", name="Test connection to Mock").click()
    expect(row.get_by_role("status")).to_have_text(re.compile(r"OK · \d+(\.\d+)? ms"))
    expect(row.locator(".tested time")).to_contain_text("UTC")


def test_connection_test_failure_shows_the_error(admin_page: Page, live_server: LiveServer) -> None:
    make_model(make_provider(name="Down", base_url=closed_port_url()), model="m", name="Gone")
    page = admin_page
    page.goto(f"{live_server.url}/models/")
    row = page.locator("tr", has_text="Gone")
    row.get_by_role("button", name="Test connection to Gone").click()
    expect(row.get_by_role("status")).to_contain_text(
        "could not reach 127.0.0.1: connection refused"
    )
    expect(row.locator(".tested")).to_contain_text("not tested")


def test_import_models_from_the_mock_provider(admin_page: Page, live_server: LiveServer) -> None:
    provider = mock_provider(live_server, name="Mock")
    page = admin_page
    page.goto(f"{live_server.url}/providers/")
    page.get_by_role("link", name="Import models into Mock").click()
    expect(page).to_have_title("Import models · Mock · ModelDesk")
    choice = page.get_by_role("checkbox", name="mock")
    expect(choice).to_be_checked()
    page.get_by_role("button", name="Add selected models").click()
    expect(page.get_by_role("status").filter(has_text="Added 1 model (disabled).")).to_be_visible()
    expect(page).to_have_url(f"{live_server.url}/models/?provider={provider.id}")
    expect(page.get_by_role("switch", name="Enabled: mock")).to_have_attribute(
        "aria-checked", "false"
    )

    page.goto(f"{live_server.url}/providers/{provider.id}/import")
    expect(page.get_by_role("checkbox", name="mock")).to_be_disabled()
    expect(page.get_by_text("already added", exact=True)).to_be_visible()


def test_fetching_models_from_a_slow_provider_says_so_and_can_be_cancelled(
    admin_page: Page, live_server: LiveServer
) -> None:
    silent = SilentUpstream()
    try:
        make_provider(name="Silent", base_url=silent.url, api_prefix="/v1")
        page = admin_page
        page.goto(f"{live_server.url}/providers/")
        status = page.locator("#slow-request")

        page.get_by_role("link", name="Import models into Silent").click()
        expect(status).to_be_visible()
        expect(status).to_contain_text("Asking Silent for its models…")
        status.get_by_role("button", name="Cancel").click()
        expect(status).to_be_hidden()

        page.get_by_role("link", name="Import models into Silent").click()
        expect(status).to_be_visible()
        page.keyboard.press("Escape")
        expect(status).to_be_hidden()

        # Both were real requests, and both were given up: the page never left the list.
        assert wait_for(lambda: silent.requests == 2)
        expect(page).to_have_url(f"{live_server.url}/providers/")
        expect(page.get_by_role("heading", name="Providers")).to_be_visible()
    finally:
        silent.stop()


def test_member_cannot_open_config_pages(member_page: Page, live_server: LiveServer) -> None:
    page = member_page
    main_nav = page.get_by_role("navigation", name="Main")
    expect(main_nav.get_by_role("link", name="Chat")).to_be_visible()
    expect(main_nav.get_by_role("link", name="Providers")).to_have_count(0)
    for path in ("/providers/", "/models/", "/providers/new"):
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None and response.status == 403, path
        expect(page.get_by_text("You do not have access to this page.")).to_be_visible()
