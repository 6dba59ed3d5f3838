"""Sessions over a real connection when an admin acts on a user: a disabled user's open
session is refused at once; a changed own password keeps this session and ends the others."""

from __future__ import annotations

from tests.support.app import LiveServer
from tests.support.users import MEMBER_EMAIL, PASSWORD, csrf_token, signed_in_client
from webapp.models import User
from webapp.services import users


def test_a_disabled_users_open_session_is_refused_at_once(
    live_server: LiveServer, member: User
) -> None:
    browser = signed_in_client(live_server, MEMBER_EMAIL)
    try:
        assert browser.get("/").status_code == 200
        users.set_disabled(member.id, True)
        refused = browser.get("/")
        assert refused.status_code == 302
        assert refused.headers["location"].startswith("/login")
        users.set_disabled(member.id, False)
        assert browser.get("/").status_code == 302  # enabling does not revive the session
    finally:
        browser.close()


def test_changing_your_password_keeps_this_session_and_ends_the_others(
    live_server: LiveServer, member: User
) -> None:
    here = signed_in_client(live_server, MEMBER_EMAIL)
    elsewhere = signed_in_client(live_server, MEMBER_EMAIL)
    try:
        changed = here.post(
            "/account",
            data={
                "csrf_token": csrf_token(here, "/account"),
                "current_password": PASSWORD,
                "password": "a new password here",
                "password_confirmation": "a new password here",
            },
        )
        assert changed.status_code == 303, changed.text
        page = here.get(changed.headers["location"])
        assert page.status_code == 200
        assert "Your password is changed" in page.text
        assert elsewhere.get("/account").status_code == 302
    finally:
        here.close()
        elsewhere.close()
