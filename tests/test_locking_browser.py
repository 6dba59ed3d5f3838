"""A stale save in a real browser: the boosted form post comes back 409 and htmx shows it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.support.app import LiveServer
from tests.support.factories import make_provider
from webapp.extensions import db
from webapp.models import LLMProvider
from webapp.services import providers

pytestmark = pytest.mark.usefixtures("live_server")


def test_a_stale_provider_save_shows_the_current_values_and_what_was_typed(
    admin_page: Page, live_server: LiveServer
) -> None:
    provider = make_provider(name="Acme")
    page = admin_page
    page.goto(f"{live_server.url}/providers/{provider.id}/edit")
    expect(page).to_have_title("Edit Acme · ModelDesk")

    # Someone else saves the provider while this page is open.
    fields = providers.ProviderFields(
        name="Acme (theirs)", base_url=provider.base_url, api_prefix=provider.api_prefix
    )
    providers.save_provider(provider, fields, expected_version=1)

    page.get_by_label("Name").fill("Acme (mine)")
    page.get_by_role("button", name="Save provider").click()

    alert = page.get_by_role("alert").filter(has_text="Someone else changed this provider")
    expect(alert).to_contain_text("here are the current values; your changes were not saved")
    expect(page.get_by_label("Name")).to_have_value("Acme (theirs)")
    row = alert.get_by_role("row", name="Name")
    expect(row.get_by_role("cell").nth(0)).to_have_text("Acme (theirs)")
    expect(row.get_by_role("cell").nth(1)).to_have_text("Acme (mine)")

    # Saving again, with the current values in view, is a deliberate overwrite.
    page.get_by_label("Name").fill("Acme (mine)")
    page.get_by_role("button", name="Save provider").click()
    expect(
        page.get_by_role("status").filter(has_text="Saved provider Acme (mine).")
    ).to_be_visible()
    db.session.expire_all()
    assert db.session.get(LLMProvider, provider.id).name == "Acme (mine)"
