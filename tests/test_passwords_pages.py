"""Pages that hash or check a password, when every password check slot stays busy: a 503
that says to try again shortly, never a hang or a 500."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.support.users import MEMBER_EMAIL, PASSWORD
from webapp.passwords import RETRY_AFTER_SECONDS, PasswordGate

NEW_PASSWORD = "another horse battery"


def test_changing_your_password_while_checks_are_busy_says_try_again(
    member_client: FlaskClient, full_gate: PasswordGate
) -> None:
    response = member_client.post(
        "/account",
        data={
            "current_password": PASSWORD,
            "password": NEW_PASSWORD,
            "password_confirmation": NEW_PASSWORD,
        },
    )

    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert "Too many password checks at once" in response.get_data(as_text=True)


def test_signing_in_while_checks_are_busy_keeps_the_email(
    app: Flask, member: Any, full_gate: PasswordGate
) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    data = {"email": MEMBER_EMAIL, "password": PASSWORD}
    response = app.test_client().post("/login", data=data)

    assert response.status_code == 503
    page = response.get_data(as_text=True)
    assert "Too many sign-ins at once" in page
    assert f'value="{MEMBER_EMAIL}"' in page
