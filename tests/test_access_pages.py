"""Walk every route in the URL map: anonymous requests are refused, and state-changing
requests without a CSRF token are rejected and change nothing."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from tests.support.factories import make_model, make_preset, make_provider
from tests.support.routes import app_rules, concrete_path, snapshot
from tests.support.users import ADMIN_EMAIL, MEMBER_EMAIL, sign_in
from webapp.security import ADMIN_BLUEPRINTS, PUBLIC_ENDPOINTS
from webapp.services import app_keys

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture
def ids(app: Flask, db: Any) -> dict[str, int]:
    provider = make_provider()
    model = make_model(provider)
    preset = make_preset(model)
    app_key = app_keys.create_key("walker").key
    assert app_key is not None
    every = {
        "provider_id": provider.id,
        "model_id": model.id,
        "preset_id": preset.id,
        "key_id": app_key.id,
        "id": 1,
    }
    return every


def methods(rule: Rule) -> list[str]:
    return sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})


def test_the_url_map_has_the_pages(app: Flask) -> None:
    endpoints = {rule.endpoint for rule in app_rules(app)}
    assert {"auth.login", "chat.index", "providers.index", "models.index"} <= endpoints


def test_anonymous_requests_are_refused_everywhere_but_public_pages(
    app: Flask, client: FlaskClient, admin: Any, ids: dict[str, int]
) -> None:
    app.config["WTF_CSRF_ENABLED"] = False  # so refusals come from sign-in, not CSRF
    checked = 0
    for rule in app_rules(app):
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        path = concrete_path(rule, ids)
        for method in methods(rule):
            response = client.open(path, method=method)
            assert response.status_code in (302, 401), (method, path, response.status_code)
            if response.status_code == 302:
                assert response.headers["Location"].startswith("/login"), (method, path)
            checked += 1
    assert checked >= 10


def test_state_changes_without_csrf_token_are_rejected(
    app: Flask, ids: dict[str, int], admin: Any, db: Any
) -> None:
    client = app.test_client()
    app.config["WTF_CSRF_ENABLED"] = False
    sign_in(client, ADMIN_EMAIL)
    app.config["WTF_CSRF_ENABLED"] = True
    before = snapshot(db)
    checked = 0
    for rule in app_rules(app):
        path = concrete_path(rule, ids)
        for method in set(methods(rule)) & STATE_CHANGING:
            if rule.endpoint == "auth.logout":
                continue  # checked last: it would end the session the others need
            for headers in ({}, {"HX-Request": "true"}):
                response = client.open(
                    path, method=method, headers=headers, data={"name": "changed"}
                )
                assert response.status_code == 400, (method, path, response.status_code)
            checked += 1
    response = client.post("/logout")
    assert response.status_code == 400
    assert snapshot(db) == before
    assert checked >= 5


def test_members_are_refused_every_admin_page_and_change(
    app: Flask, ids: dict[str, int], member: Any, db: Any
) -> None:
    app.config["WTF_CSRF_ENABLED"] = False  # so refusals come from the role, not CSRF
    client = app.test_client()
    sign_in(client, MEMBER_EMAIL)
    before = snapshot(db)
    walked = set()
    for rule in app_rules(app):
        if rule.endpoint.split(".")[0] not in ADMIN_BLUEPRINTS:
            continue
        path = concrete_path(rule, ids)
        for method in methods(rule):
            response = client.open(path, method=method, data={"name": "changed"})
            assert response.status_code == 403, (method, path, response.status_code)
        walked.add(rule.endpoint.split(".")[0])
    assert walked == ADMIN_BLUEPRINTS
    assert snapshot(db) == before
