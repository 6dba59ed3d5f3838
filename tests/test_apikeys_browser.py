"""The API keys page in Chromium: an admin creates a key, copies its secret (shown once, gone
on reload), and revokes the key after confirming."""

from __future__ import annotations

import re

from playwright.sync_api import Dialog, Page, Request, expect

from tests.support.app import LiveServer
from tests.support.factories import make_model, make_provider
from webapp.extensions import db
from webapp.services import app_keys


def test_an_admin_creates_a_key_copies_its_secret_once_and_revokes_it(
    admin_page: Page, live_server: LiveServer
) -> None:
    page = admin_page
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    provider = make_provider()
    make_model(provider, model="basic", name="Basic", key="mock-basic")
    make_model(provider, model="lite", name="Lite", key="mock-lite")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="API keys").click()
    expect(page).to_have_title("API keys · ModelDesk")
    page.get_by_label("Name").fill("billing-bot")
    page.get_by_label("Requests per minute").fill("abc")
    page.get_by_role("checkbox", name="mock-lite").check()
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_text("Must be a whole number")).to_be_visible()
    expect(page.get_by_label("Name")).to_have_value("billing-bot")
    expect(page.get_by_role("checkbox", name="mock-lite")).to_be_checked()

    page.get_by_label("Requests per minute").fill("60")
    page.get_by_role("button", name="Create key").click()
    secret_field = page.get_by_role("textbox", name="Secret")
    expect(secret_field).to_have_value(re.compile(r"^mdk-\S{40,}$"))
    expect(page.get_by_text("This is the only time the secret is shown.")).to_be_visible()
    assert page.url == f"{live_server.url}/apikeys/"
    secret = secret_field.input_value()
    grant = app_keys.authenticate(secret)
    assert grant is not None and grant.allows("mock-lite") and not grant.allows("mock-basic")

    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("status").filter(has_text="Copied.")).to_be_visible()
    assert page.evaluate("() => navigator.clipboard.readText()") == secret

    page.reload()
    expect(page.get_by_role("row").filter(has_text="billing-bot")).to_contain_text("active")
    expect(page.get_by_role("textbox", name="Secret")).to_have_count(0)
    assert secret not in page.content()

    dialogs: list[str] = []

    def answer(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss() if len(dialogs) == 1 else dialog.accept()

    def count_revokes(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/revoke"):
            revokes.append(request.url)

    revokes: list[str] = []
    page.on("dialog", answer)
    page.on("request", count_revokes)
    revoke = page.get_by_role("button", name="Revoke billing-bot")
    revoke.click()  # dismissed: nothing is sent
    revoke.click()
    expect(page.get_by_role("status").filter(has_text="Revoked billing-bot")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="billing-bot")).to_contain_text("revoked")
    confirm = "Revoke billing-bot? Apps using it are refused at once. This cannot be undone."
    assert dialogs == [confirm, confirm] and len(revokes) == 1
    db.session.expire_all()
    assert app_keys.authenticate(secret) is None
    # The one refused form logs its 422 twice (the load, htmx); nothing else may go wrong.
    assert [p for p in problems if "422" not in p] == [], problems
    assert len(problems) == 2, problems
