"""The Users page (admin only) and the Account page, through the Flask test client."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.support.users import ADMIN_EMAIL, MEMBER_EMAIL, PASSWORD
from webapp.extensions import db
from webapp.models import Conversation, User
from webapp.services.users import authenticate, find_user


def test_admins_see_users_in_the_navigation(admin_client: FlaskClient, member: User) -> None:
    page = admin_client.get("/users/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'href="/users/"' in html and 'href="/account"' in html
    assert MEMBER_EMAIL in html and "Never" in html  # the member never signed in


def test_members_have_an_account_page_but_no_users_page(member_client: FlaskClient) -> None:
    assert member_client.get("/users/").status_code == 403
    account = member_client.get("/account").get_data(as_text=True)
    assert 'href="/users/"' not in account and "Change your password" in account


def test_an_admin_creates_a_user_and_errors_keep_the_email(admin_client: FlaskClient) -> None:
    bad = admin_client.post(
        "/users/", data={"email": "new@example.com", "role": "member", "password": "short"}
    )
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert 'value="new@example.com"' in html and "At least 8 characters" in html
    assert "Nothing was saved." in html and "Someone else changed" not in html
    made = admin_client.post(
        "/users/", data={"email": "new@example.com", "role": "admin", "password": PASSWORD}
    )
    assert made.status_code == 303
    assert find_user("new@example.com").role == "admin"
    listed = admin_client.get("/users/").get_data(as_text=True)
    assert "Created admin new@example.com." in listed


def test_the_last_admin_is_refused_with_a_clear_message(
    admin_client: FlaskClient, admin: User
) -> None:
    for action, data in (("role", {"role": "member"}), ("disable", {}), ("delete", {})):
        response = admin_client.post(f"/users/{admin.id}/{action}", data=data)
        assert response.status_code == 303
        html = admin_client.get("/users/").get_data(as_text=True)
        assert f"{ADMIN_EMAIL} is the last active admin" in html, action
    db.session.expire_all()
    assert (admin.role, admin.disabled) == ("admin", False)


def test_disable_enable_reset_and_delete_a_member(admin_client: FlaskClient, member: User) -> None:
    db.session.add(Conversation(user_id=member.id))
    db.session.commit()
    listed = admin_client.get("/users/").get_data(as_text=True)
    assert f"Delete {MEMBER_EMAIL} and their 1 conversation?" in listed
    admin_client.post(f"/users/{member.id}/disable")
    db.session.expire_all()
    assert member.disabled
    admin_client.post(f"/users/{member.id}/enable")
    db.session.expire_all()
    assert not member.disabled
    assert admin_client.get(f"/users/{member.id}/password").status_code == 200
    short = admin_client.post(f"/users/{member.id}/password", data={"password": "short"})
    assert short.status_code == 422
    reset = admin_client.post(f"/users/{member.id}/password", data={"password": "reset to this"})
    assert reset.status_code == 303
    assert authenticate(MEMBER_EMAIL, "reset to this") is not None
    admin_client.post(f"/users/{member.id}/delete")
    assert "Deleted member@example.com and their 1 conversation." in admin_client.get(
        "/users/"
    ).get_data(as_text=True)
    assert db.session.query(Conversation).count() == 0


def test_a_disabled_user_cannot_sign_in(app: Flask, client: FlaskClient, member: User) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    member.disabled = True
    db.session.commit()
    response = client.post("/login", data={"email": MEMBER_EMAIL, "password": PASSWORD})
    assert response.status_code == 403
    assert "This account is disabled" in response.get_data(as_text=True)
    wrong = client.post("/login", data={"email": MEMBER_EMAIL, "password": "not it at all"})
    assert "Wrong email or password" in wrong.get_data(as_text=True)


def test_a_sign_in_shows_on_the_users_page(admin_client: FlaskClient, admin: User) -> None:
    db.session.expire_all()
    assert db.session.get(User, admin.id).last_sign_in_at is not None


def _change(current: str, new: str, confirmation: str | None = None) -> dict[str, str]:
    return {
        "current_password": current,
        "password": new,
        "password_confirmation": new if confirmation is None else confirmation,
    }


def test_account_password_change_asks_the_current_one(
    member_client: FlaskClient, member: User
) -> None:
    """(That the other sessions end and this one stays is tested over a live server.)"""
    wrong = member_client.post("/account", data=_change("nope", "next password"))
    assert wrong.status_code == 422
    assert "Is not your current password" in wrong.get_data(as_text=True)
    mismatch = member_client.post("/account", data=_change(PASSWORD, "next password", "x"))
    assert 'id="password_confirmation-error"' in mismatch.get_data(as_text=True)
    done = member_client.post("/account", data=_change(PASSWORD, "next password"))
    assert done.status_code == 303
    page = member_client.get("/account")
    assert page.status_code == 200
    assert "Your password is changed" in page.get_data(as_text=True)
    assert authenticate(MEMBER_EMAIL, "next password") is not None


def test_setup_mismatch_shows_under_the_confirmation(app: Flask, client: FlaskClient) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    response = client.post(
        "/setup",
        data={"email": "me@example.com", "password": PASSWORD, "password_confirmation": "other"},
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert (
        '<p class="field-error" id="password_confirmation-error">Does not match the password</p>'
        in html
    )
    assert 'aria-describedby="password_confirmation-error"' in html
    assert 'id="password-error"' not in html
