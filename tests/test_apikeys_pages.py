"""The API keys page (admin only), through the Flask test client: the list, the create form
(errors next to the fields, input kept), the secret shown once, revoke."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.factories import make_model, make_provider
from tests.support.users import ADMIN_EMAIL
from webapp.extensions import db
from webapp.models import AppKey
from webapp.services import app_keys

SECRET = re.compile(r'id="new-key-secret"[^>]*value="(mdk-[^"]+)"')
HTMX = {"HX-Request": "true", "HX-Boosted": "true"}


@pytest.fixture
def keyed_models(app: Flask) -> list[str]:
    provider = make_provider()
    make_model(provider, model="basic", name="Basic", key="mock-basic")
    make_model(provider, model="lite", name="Lite", key="mock-lite", enabled=False)
    make_model(provider, model="unkeyed", name="Unkeyed")
    return ["mock-basic", "mock-lite"]


def form(**fields: Any) -> dict[str, Any]:
    return {"name": "billing-bot", "expires_days": "", "rpm": "", "tpm": "", **fields}


def text(response: Any) -> str:
    return response.get_data(as_text=True)


def test_admins_find_the_page_next_to_users(
    admin_client: FlaskClient, keyed_models: list[str]
) -> None:
    page = admin_client.get("/apikeys/")

    html = text(page)
    assert page.status_code == 200
    assert re.search(r'href="/users/"[^>]*>Users</a>\s*<a href="/apikeys/"', html)
    assert "No API keys yet." in html
    boxes = re.findall(r'type="checkbox" name="model_keys" value="([^"]+)"', html)
    assert boxes == keyed_models  # every model with a key, enabled or not


def test_members_are_refused(member_client: FlaskClient) -> None:
    assert member_client.get("/apikeys/").status_code == 403
    assert member_client.post("/apikeys/", data=form()).status_code == 403
    assert app_keys.list_keys() == []
    assert 'href="/apikeys/"' not in text(member_client.get("/"))


def test_the_secret_is_shown_once_and_only_its_hash_is_stored(
    admin_client: FlaskClient, keyed_models: list[str]
) -> None:
    created = admin_client.post(
        "/apikeys/",
        data=form(model_keys=["mock-lite"], expires_days="30", rpm="60", tpm="100000"),
    )

    assert created.status_code == 201
    assert created.headers["Cache-Control"] == "no-store"
    html = text(created)
    shown = SECRET.search(html)
    assert shown is not None
    secret = shown.group(1)
    assert "This is the only time the secret is shown." in html
    assert 'data-copy="new-key-secret"' in html
    key = db.session.scalars(db.select(AppKey)).one()
    assert (key.name, key.model_keys, key.rpm, key.tpm, key.created_by) == (
        "billing-bot", ["mock-lite"], 60, 100000, ADMIN_EMAIL
    )  # fmt: skip
    assert key.expires_at is not None and key.secret_hash == app_keys.hash_secret(secret)
    assert secret not in repr(db.session.execute(db.select(AppKey.__table__)).all())
    # The list shows the key by its prefix, the form is empty again for the next key.
    assert f"<code>{key.prefix}…</code>" in html and 'value="billing-bot"' not in html
    assert "60</span> requests/min" in html and "100000</span> tokens/min" in html

    reloaded = text(admin_client.get("/apikeys/"))
    assert secret not in reloaded and "new-key-secret" not in reloaded
    assert "billing-bot" in reloaded and f"{key.prefix}…" in reloaded


def test_a_boosted_create_shows_the_list_address_not_the_posts(
    admin_client: FlaskClient, keyed_models: list[str]
) -> None:
    created = admin_client.post("/apikeys/", data=form(), headers=HTMX)

    assert created.status_code == 201
    assert created.headers["HX-Replace-Url"] == "/apikeys/"
    assert created.headers["Cache-Control"] == "no-store"
    assert SECRET.search(text(created)) is not None
    assert 'hx-history="false"' in text(created)


@pytest.mark.parametrize(
    ("fields", "field_id", "message"),
    [
        ({"name": ""}, "name", "Can&#39;t be blank"),
        ({"name": "x" * 300}, "name", "Is too long (at most 100 characters)"),
        ({"name": "nul\x00name"}, "name", "Must not contain NUL"),
        ({"rpm": "abc"}, "rpm", "Must be a whole number"),
        ({"rpm": "99999999999"}, "rpm", "Is too large"),
        ({"tpm": "0"}, "tpm", "Must be between 1 and 2147483647"),
        ({"expires_days": "-1"}, "expires_days", "Must be greater than or equal to 0"),
        ({"expires_days": "40000"}, "expires_days", "Must be between 1 and 36500 days"),
        ({"model_keys": ["mock-basic", "ghost"]}, "model_keys", "Include unknown keys: ghost"),
    ],
)
def test_errors_are_next_to_their_field_and_keep_the_input(
    admin_client: FlaskClient,
    keyed_models: list[str],
    fields: dict[str, Any],
    field_id: str,
    message: str,
) -> None:
    typed = form(name="kept-name", rpm="7", tpm="800", expires_days="12", model_keys=["mock-basic"])
    typed.update(fields)

    response = admin_client.post("/apikeys/", data=typed)

    assert response.status_code == 422
    html = text(response)
    error = re.search(rf'<p class="field-error" id="{field_id}-error">([^<]*)</p>', html)
    assert error is not None and message in error.group(1), html
    assert "Nothing was saved." in html and "new-key-secret" not in html
    for name in ("rpm", "tpm", "expires_days"):
        value = str(typed[name]).replace('"', "&#34;")
        assert f'name="{name}" value="{value}"' in html, name
    assert re.search(r'value="mock-basic" checked', html)
    assert not re.search(r'value="mock-lite" checked', html)
    assert app_keys.list_keys() == []


def test_a_taken_name_is_an_error_on_the_name(
    admin_client: FlaskClient, keyed_models: list[str]
) -> None:
    app_keys.create_key("billing-bot")

    response = admin_client.post("/apikeys/", data=form(rpm="5"))

    assert response.status_code == 422
    html = text(response)
    assert 'id="name-error">Has already been taken' in html
    assert 'name="rpm" value="5"' in html
    assert len(app_keys.list_keys()) == 1


def test_revoke_stops_the_key_and_says_so(
    admin_client: FlaskClient, keyed_models: list[str]
) -> None:
    created = app_keys.create_key("leaver", model_keys=["mock-basic"])
    assert created.key is not None and created.secret is not None
    listed = text(admin_client.get("/apikeys/"))
    assert 'data-confirm="Revoke leaver? Apps using it are refused at once.' in listed

    revoked = admin_client.post(f"/apikeys/{created.key.id}/revoke")

    assert revoked.status_code == 303 and revoked.headers["Location"] == "/apikeys/"
    assert app_keys.authenticate(created.secret) is None
    after = text(admin_client.get("/apikeys/"))
    assert "Revoked leaver: apps using it are refused from now on." in after
    assert '<span class="badge err">revoked</span>' in after
    assert "Revoke leaver" not in after
    again = admin_client.post(f"/apikeys/{created.key.id}/revoke", headers=HTMX)
    assert again.status_code == 204 and again.headers["HX-Location"] == "/apikeys/"
    assert "leaver was already revoked." in text(admin_client.get("/apikeys/"))
    assert admin_client.post("/apikeys/2147483647/revoke").status_code == 404


def test_an_expired_key_is_listed_as_expired(
    admin_client: FlaskClient, keyed_models: list[str]
) -> None:
    created = app_keys.create_key("short-lived", expires_days=1)
    assert created.key is not None
    created.key.expires_at = created.key.created_at
    db.session.commit()

    html = text(admin_client.get("/apikeys/"))

    assert '<span class="badge err">expired</span>' in html
    assert "Revoke short-lived" in html  # still revocable: renewing it is not a thing


def test_forms_need_the_csrf_token(app: Flask, admin_client: FlaskClient) -> None:
    created = app_keys.create_key("guarded")
    assert created.key is not None
    app.config["WTF_CSRF_ENABLED"] = True

    for path in ("/apikeys/", f"/apikeys/{created.key.id}/revoke"):
        assert admin_client.post(path, data=form(name="sneaky")).status_code == 400, path
    token = re.search(r'name="csrf_token" value="([^"]+)"', text(admin_client.get("/apikeys/")))
    assert token is not None
    made = admin_client.post("/apikeys/", data=form(name="allowed", csrf_token=token.group(1)))
    assert made.status_code == 201
    assert [key.name for key in app_keys.list_keys()] == ["allowed", "guarded"]
    assert created.key.revoked_at is None
