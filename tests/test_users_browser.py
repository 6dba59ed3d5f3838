"""The Users page in Chromium: an admin creates a user, disables them, enables them again."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.support.app import LiveServer
from webapp.extensions import db
from webapp.services.users import find_user


def test_an_admin_creates_disables_and_enables_a_user(
    admin_page: Page, live_server: LiveServer
) -> None:
    page = admin_page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    expect(page).to_have_title("Users · ModelDesk")
    page.get_by_label("Email").fill("colleague@example.com")
    page.get_by_label("Role").select_option("member")
    page.get_by_role("textbox", name="Password").fill("colleague password")
    page.get_by_role("button", name="Add user").click()
    expect(
        page.get_by_role("status").filter(has_text="Created member colleague@example.com.")
    ).to_be_visible()
    row = page.get_by_role("row").filter(has_text="colleague@example.com")
    expect(row).to_contain_text("active")

    row.get_by_role("button", name="Disable colleague@example.com").click()
    expect(
        page.get_by_role("status").filter(has_text="Disabled colleague@example.com")
    ).to_be_visible()
    expect(row).to_contain_text("disabled")
    db.session.expire_all()
    assert find_user("colleague@example.com").disabled

    row.get_by_role("button", name="Enable colleague@example.com").click()
    expect(
        page.get_by_role("status").filter(has_text="Enabled colleague@example.com")
    ).to_be_visible()
    expect(row).to_contain_text("active")
    db.session.expire_all()
    assert not find_user("colleague@example.com").disabled
