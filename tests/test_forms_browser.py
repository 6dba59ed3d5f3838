"""Forms never lose the page, in Chromium: after a failed save the address bar shows the
form's page (a reload works), no CSP violation is logged, and after a save the flash is in
view."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import ConsoleMessage, Page, expect

from tests.support.app import LiveServer
from tests.support.factories import make_model, make_preset, make_provider
from webapp.extensions import db
from webapp.models import Conversation, User

COLLECT_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__csp.push(event.violatedDirective + " " + event.sample);
});
"""
# Violation events are queued as tasks: let the ones the page caused arrive before reading.
READ_VIOLATIONS = "() => new Promise((done) => setTimeout(() => done(window.__csp), 100))"


def _watch(page: Page) -> list[str]:
    """Console errors about the Content-Security-Policy from now on. (A 422 logs two other
    errors — the failed load and htmx's "Response Status Error Code" — which are expected.)"""
    errors: list[str] = []

    def keep(message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            errors.append(message.text)

    page.on("console", keep)
    page.add_init_script(COLLECT_VIOLATIONS)
    return errors


def _fails_then_reloads(page: Page, live_server: LiveServer, form_url: str, field: str,
                        bad: str, button: str) -> None:  # fmt: skip
    errors = _watch(page)
    page.goto(f"{live_server.url}{form_url}")
    typed_into = page.get_by_label(field, exact=False).first
    typed_into.fill(bad)
    # What autofill and password-manager extensions do to a field: a style set through the
    # CSSOM (allowed). htmx's settle used to copy it onto the new field with setAttribute,
    # an inline style the CSP refuses.
    typed_into.evaluate("(field) => { field.style.outline = '2px solid orange'; }")
    page.get_by_role("button", name=button).click()
    expect(page.get_by_role("alert").filter(has_text="Nothing was saved")).to_be_visible()
    expect(page).to_have_url(f"{live_server.url}{form_url}")
    assert page.evaluate(READ_VIOLATIONS) == []
    assert errors == [], errors
    page.reload()
    expect(page).to_have_url(f"{live_server.url}{form_url}")
    expect(page.get_by_role("button", name=button)).to_be_visible()


def test_a_failed_provider_save_stays_on_the_edit_page(
    admin_page: Page, live_server: LiveServer
) -> None:
    provider = make_provider(name="Acme")
    _fails_then_reloads(
        admin_page, live_server, f"/providers/{provider.id}/edit", "Base URL", "not a url",
        "Save provider",
    )  # fmt: skip


def test_a_failed_new_provider_stays_on_the_new_page(
    admin_page: Page, live_server: LiveServer
) -> None:
    _fails_then_reloads(
        admin_page, live_server, "/providers/new", "Base URL", "not a url", "Create provider"
    )


def test_a_failed_model_save_stays_on_the_edit_page(
    admin_page: Page, live_server: LiveServer
) -> None:
    model = make_model(make_provider(name="Acme"), model="m1", name="M1")
    _fails_then_reloads(
        admin_page, live_server, f"/models/{model.id}/edit", "Context window", "lots",
        "Save model",
    )  # fmt: skip


def test_a_failed_preset_save_stays_on_the_edit_page(
    admin_page: Page, live_server: LiveServer
) -> None:
    model = make_model(make_provider(name="Acme"), model="m1", name="M1")
    preset = make_preset(model, name="P1")
    _fails_then_reloads(
        admin_page, live_server, f"/models/{model.id}/presets/{preset.id}/edit", "Name", " ",
        "Save preset",
    )  # fmt: skip


def test_the_flash_after_a_save_is_in_view(admin_page: Page, live_server: LiveServer) -> None:
    for number in range(40):  # a list long enough to scroll
        make_provider(name=f"Provider {number:02}")
    page = admin_page
    page.goto(f"{live_server.url}/providers/")
    last = page.get_by_role("link", name="Provider 39", exact=True)
    last.scroll_into_view_if_needed()
    last.click()
    page.get_by_label("Name").fill("Provider 39 (renamed)")
    page.get_by_role("button", name="Save provider").click()
    flash = page.get_by_role("status").filter(has_text="Saved provider Provider 39 (renamed).")
    expect(flash).to_be_in_viewport()
    expect(page).to_have_url(f"{live_server.url}/providers/")


def test_a_failed_rename_keeps_the_conversation_address(
    member_page: Page, live_server: LiveServer, member: Any
) -> None:
    user = db.session.get(User, member.id)
    conversation = Conversation(user_id=user.id, title="Old title")
    db.session.add(conversation)
    db.session.commit()
    page = member_page
    errors = _watch(page)
    url = f"{live_server.url}/c/{conversation.id}"
    page.goto(url)
    page.get_by_label("Rename or delete “Old title”").click()
    page.get_by_role("textbox", name="Title").fill("   ")
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_text("Title can't be blank")).to_be_visible()
    expect(page).to_have_url(url)
    assert page.evaluate(READ_VIOLATIONS) == []
    assert errors == [], errors
    page.reload()
    expect(page).to_have_url(url)
    expect(page.get_by_role("link", name="Old title")).to_be_visible()
