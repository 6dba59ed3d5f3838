"""Sign-in, roles, the set-up page, CSRF and throttling."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import check_password_hash

from tests.support.users import ADMIN_EMAIL, PASSWORD, sign_in
from webapp import passwords
from webapp.models import User
from webapp.services.users import create_user


def test_pages_redirect_anonymous_users_to_sign_in(client: FlaskClient, admin: Any) -> None:
    response = client.get("/providers/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=/providers/")


def test_htmx_requests_get_hx_redirect_when_signed_out(client: FlaskClient, admin: Any) -> None:
    response = client.get("/models/", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login")


def test_setup_page_creates_first_admin_then_disappears(app: Flask, client: FlaskClient) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    assert client.get("/login").headers["Location"] == "/setup"
    response = client.post(
        "/setup",
        data={
            "email": "First@Example.com",
            "password": PASSWORD,
            "password_confirmation": PASSWORD,
        },
    )
    assert response.status_code == 303
    user = User.query.one()
    assert (user.email, user.role) == ("first@example.com", "admin")
    assert PASSWORD not in user.password_hash
    assert client.get("/setup").status_code == 404


def test_setup_errors_keep_the_email(app: Flask, client: FlaskClient) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    response = client.post(
        "/setup",
        data={"email": "me@example.com", "password": "short", "password_confirmation": "other"},
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'value="me@example.com"' in html
    assert "at least 8 characters" in html
    assert User.query.count() == 0


def test_wrong_password_is_refused(app: Flask, client: FlaskClient, admin: Any) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    response = client.post("/login", data={"email": ADMIN_EMAIL, "password": "nope-nope"})
    assert response.status_code == 401
    assert "Wrong email or password" in response.get_data(as_text=True)
    assert client.get("/providers/").status_code == 302


def test_next_redirect_stays_on_this_site(app: Flask, client: FlaskClient, admin: Any) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    for target, expected in [
        ("/models/", "/models/"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        # Control characters: CR/LF broke the Location header (a 500); browsers drop a tab.
        ("/\r\nX-Injected: 1", "/"),
        ("/\t/evil.example", "/"),
        ("/models/\x00", "/"),
        ("/" + "a" * 5000, "/"),
    ]:
        response = client.post(
            "/login",
            query_string={"next": target},
            data={"email": ADMIN_EMAIL, "password": PASSWORD},
        )
        assert response.headers["Location"] == expected, target
        client.post("/logout")


def test_nul_in_the_email_is_a_wrong_sign_in_or_a_field_error(
    app: Flask, client: FlaskClient
) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    setup = {"email": "a\x00@example.com", "password": PASSWORD, "password_confirmation": PASSWORD}
    response = client.post("/setup", data=setup)
    assert response.status_code == 422
    assert "not contain NUL" in response.get_data(as_text=True)
    assert User.query.count() == 0
    create_user(ADMIN_EMAIL, PASSWORD, role="admin")
    response = client.post("/login", data={"email": ADMIN_EMAIL + "\x00", "password": PASSWORD})
    assert response.status_code == 401


def test_unknown_and_known_emails_cost_the_same_password_check(
    app: Flask, client: FlaskClient, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No timing answer to "does this email have an account": one hash check, same method."""
    app.config["WTF_CSRF_ENABLED"] = False
    checked: list[str] = []

    def counting_check(pwhash: str, password: str) -> bool:
        checked.append(pwhash.split("$", 1)[0])
        return check_password_hash(pwhash, password)

    monkeypatch.setattr(passwords, "check_password_hash", counting_check)
    answers = []
    for email in (ADMIN_EMAIL, "nobody@example.com", ADMIN_EMAIL.upper(), "nobody@example.com"):
        checked.clear()
        response = client.post("/login", data={"email": email, "password": "wrong-password"})
        answers.append((response.status_code, checked[:]))
    method = app.config["PASSWORD_HASH_METHOD"]
    assert answers == [(401, [method])] * 4
    assert "Wrong email or password" in response.get_data(as_text=True)


def test_member_cannot_open_config_pages(member_client: FlaskClient) -> None:
    for path in ("/providers/", "/models/", "/models/1/presets/"):
        assert member_client.get(path).status_code == 403
    assert member_client.get("/").status_code == 200


def test_admin_opens_config_pages(admin_client: FlaskClient) -> None:
    assert admin_client.get("/providers/").status_code == 200


def test_state_change_without_csrf_token_is_rejected(client: FlaskClient, admin: Any) -> None:
    response = client.post("/login", data={"email": ADMIN_EMAIL, "password": PASSWORD})
    assert response.status_code == 400
    assert "reload the page" in response.get_data(as_text=True)


def test_sign_in_is_throttled(app: Flask, client: FlaskClient, admin: Any) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    statuses = [
        client.post("/login", data={"email": ADMIN_EMAIL, "password": "wrong-pass"}).status_code
        for _ in range(11)
    ]
    assert statuses[:10] == [401] * 10
    assert statuses[10] == 429


def test_session_cookie_flags(app: Flask, client: FlaskClient, admin: Any) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    sign_in(client, ADMIN_EMAIL)
    cookie = client.get_cookie("session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"


def test_users_create_command(runner: Any) -> None:
    result = runner.invoke(
        args=["users", "create", "--admin", "ops@example.com"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output
    assert User.query.filter_by(email="ops@example.com").one().is_admin
    again = runner.invoke(
        args=["users", "create", "ops@example.com"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert again.exit_code != 0 and "already been taken" in again.output
