"""Throw malformed input at every form, query string and JSON endpoint: never a 500, never a
partial write.

Walks the URL map like a hostile user would (signed in as the admin, and signed out for the
sign-in and set-up pages): wrong types, NUL, lone surrogates, CR/LF and other control
characters, very long strings, invalid JSON, reserved keys, negative numbers, unknown ids,
wrong methods — in every form field and every query parameter the app reads.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from werkzeug.routing import Rule
from wtforms.fields.core import UnboundField

from tests.support.app import LiveServer
from tests.support.chat_http import mock_provider
from tests.support.factories import make_model, make_preset, make_provider
from tests.support.routes import app_rules, concrete_path, snapshot
from tests.support.users import ADMIN_EMAIL, PASSWORD
from webapp import forms
from webapp.models import User
from webapp.services.users import create_user

WEBAPP = Path(__file__).resolve().parent.parent / "webapp"

NASTY_TEXT = [
    "",
    " ",
    "-1",
    "0",
    "1e309",
    "NaN",
    "abc",
    "9" * 40,
    "x" * 100_000,
    "a\r\nX-Injected: 1",
    "\x00",
    "a@example.com\x00",
    "\ud800",
    "x\udfffy",
    "{",
    "[]",
    "null",
    '{"model": "x", "stream": true}',
    '{"a": ' * 300 + "1" + "}" * 300,
    # JSON escapes decode to what a form encoding cannot carry: NUL, lone surrogates.
    '{"a": "\\ud800"}',
    '{"\\u0000": 1}',
    '{"X-A": "\\r\\n"}',
    "<script>alert(1)</script>",
    "javascript:alert(1)",
    "../../etc/passwd",
    "/\t/evil.example",
    "/\r\nX-Injected: 1",
    "/a\x00b",
    "/\ud800",
    "//evil.example",
    "☃" * 50,
    json.dumps({"X-Test": "a\nb"}),
    json.dumps({"temperature": -5}),
    "true",
    "on",
]

# The characters that break things: C0/C1 controls (NUL, CR, LF, TAB, ESC, DEL…), lone
# surrogates, and everything else Unicode has.
CONTROL = st.characters(categories=["Cc"])
SURROGATE = st.characters(categories=["Cs"])
hostile_text = st.one_of(
    st.sampled_from(NASTY_TEXT),
    st.text(max_size=200),
    st.text(st.one_of(CONTROL, SURROGATE, st.characters()), max_size=60),
    # Paths, so `next` gets past "must start with /" and the characters after it are tried.
    st.text(st.one_of(CONTROL, SURROGATE, st.characters()), max_size=60).map("/".__add__),
    st.builds(
        lambda piece, count: piece * count,
        st.sampled_from(["x", "\x00", "\r\n", "☃", "\ud800", "/"]),
        st.integers(1_000, 60_000),
    ),
)


def _form_fields() -> set[str]:
    """Every field of every form class, and every name a view reads from request.form."""
    names: set[str] = set()
    for form_class in vars(forms).values():
        if isinstance(form_class, type) and issubclass(form_class, forms.Form):
            names |= {
                n for n in dir(form_class) if isinstance(getattr(form_class, n), UnboundField)
            }
    return names | _names_read_from("form")


def _names_read_from(source: str) -> set[str]:
    """The keys the code reads with `<...>.form.get("…")` or `args.get("…")`."""
    pattern = re.compile(rf'\b{source}\.get\(\s*"(\w+)"')
    return {m for path in WEBAPP.rglob("*.py") for m in pattern.findall(path.read_text())}


FIELDS = sorted(_form_fields())
QUERY_PARAMETERS = sorted(_names_read_from("args"))

form_data = st.dictionaries(st.sampled_from(FIELDS), hostile_text, max_size=8)
query_args = st.dictionaries(
    st.sampled_from(QUERY_PARAMETERS), hostile_text, min_size=1, max_size=4
)


def encoded(values: dict[str, str]) -> str:
    """URL-encoded as a client may send it: lone surrogates too (as their UTF-8 bytes)."""
    return urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in values.items()})


def post_form(client: FlaskClient, path: str, data: dict[str, str]) -> Any:
    return client.post(path, data=encoded(data), content_type="application/x-www-form-urlencoded")


def test_the_walk_covers_every_field_and_query_parameter() -> None:
    assert {"email", "password", "password_confirmation", "headers", "model_ids"} <= set(FIELDS)
    assert {"content", "system_prompt", "llm_model_id", "title"} <= set(FIELDS)
    assert {"next", "q", "page", "provider", "enabled", "llm_model_id"} <= set(QUERY_PARAMETERS)


def post_rules(app: Flask) -> list[Rule]:
    return [
        r
        for r in app_rules(app)
        if "POST" in (r.methods or ())
        and r.endpoint not in ("auth.logout", "auth.login", "auth.setup")
    ]


def seeded_ids(db: Any) -> dict[str, int]:
    provider = make_provider()
    model = make_model(provider, enabled=True, supports_streaming=True)
    preset = make_preset(model)
    return {"provider_id": provider.id, "model_id": model.id, "preset_id": preset.id}


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=form_data)
def test_form_posts_never_500_and_rejections_write_nothing(
    app: Flask, admin_client: FlaskClient, db: Any, data: dict[str, str]
) -> None:
    ids = _ids(db)
    for rule in post_rules(app):
        before = snapshot(db)
        response = post_form(admin_client, concrete_path(rule, ids), data)
        assert response.status_code < 500, (rule.rule, data, response.status_code)
        if 400 <= response.status_code < 500:
            assert snapshot(db) == before, (rule.rule, data)
        db.session.rollback()


def get_rules(app: Flask) -> list[Rule]:
    return [r for r in app_rules(app) if "GET" in (r.methods or ())]


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(args=query_args)
def test_query_strings_never_500(
    app: Flask, admin_client: FlaskClient, db: Any, live_server: LiveServer, args: dict[str, str]
) -> None:
    # The provider is the live server's mock, so the import page lists real models.
    if not db.session.query(db.metadata.tables["llm_providers"]).count():
        make_preset(make_model(mock_provider(live_server), enabled=True, supports_streaming=True))
    ids = _existing_ids(db)
    query = encoded(args)
    for rule in get_rules(app):
        path = f"{concrete_path(rule, ids)}?{query}"
        response = admin_client.get(path)
        assert response.status_code < 500, (rule.rule, args, response.status_code)
        _assert_safe_location(response, args)
        db.session.rollback()


def _assert_safe_location(response: Any, args: dict[str, str]) -> None:
    """A redirect stays on this site and carries no control character."""
    location = response.headers.get("Location")
    if location is None:
        return
    assert location.startswith("/") and not location.startswith("//"), (location, args)
    assert location.isprintable() and "\\" not in location, (location, args)


_addresses = (f"10.9.{n // 250}.{n % 250 + 1}" for n in itertools.count())


def _anonymous(app: Flask) -> FlaskClient:
    """A signed-out client from an address of its own (sign-in throttling counts by address)."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = next(_addresses)
    return client


def _delete_users(db: Any) -> None:
    db.session.rollback()
    db.session.execute(db.delete(User))
    db.session.commit()


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=form_data, args=query_args)
# The cases that gave a 500 before, always tried (and kept when the strategy changes).
@example(data={"email": "a@example.com\x00", "password": "x" * 8}, args={"next": "/\r\nX-A: 1"})
@example(
    data={"email": "\x00", "password_confirmation": "\ud800"}, args={"next": "/\t/evil.example"}
)
@example(data={"password": "\x00" * 20}, args={"next": "/a\x00b"})
def test_sign_in_and_set_up_never_500(
    app: Flask, db: Any, data: dict[str, str], args: dict[str, str]
) -> None:
    """The signed-out pages with hostile fields and query strings, including `next` on the
    redirect after a good sign-in and on /login when already signed in."""
    app.config["WTF_CSRF_ENABLED"] = False
    query = encoded(args)
    _delete_users(db)
    for path in (f"/setup?{query}", f"/login?{query}"):
        with app.app_context():  # its own `g` and session, as on a server
            client = _anonymous(app)
            assert client.get(path).status_code < 500, (path, args)
            response = post_form(client, path, data)
            assert response.status_code < 500, (path, data, args, response.status_code)
            _assert_safe_location(response, args)
    _delete_users(db)
    create_user(ADMIN_EMAIL, PASSWORD, role="admin")
    with app.app_context():
        client = _anonymous(app)
        response = post_form(client, f"/login?{query}", data)
        assert response.status_code < 500, (data, args, response.status_code)
        good = {"email": ADMIN_EMAIL, "password": PASSWORD}
        response = post_form(client, f"/login?{query}", good)
        assert response.status_code == 303, (args, response.status_code)
        _assert_safe_location(response, args)
        response = client.get(f"/login?{query}")
        assert response.status_code == 302, (args, response.status_code)
        _assert_safe_location(response, args)


def _ids(db: Any) -> dict[str, int]:
    """Rows to aim at: made by the first example, found again by the later ones."""
    if db.session.query(db.metadata.tables["llm_providers"]).count():
        return _existing_ids(db)
    return seeded_ids(db)


def _existing_ids(db: Any) -> dict[str, int]:
    from webapp.models import LLMModel, LLMPreset, LLMProvider

    first = lambda model: db.session.query(model.id).order_by(model.id).first()  # noqa: E731
    ids = {
        "provider_id": first(LLMProvider),
        "model_id": first(LLMModel),
        "preset_id": first(LLMPreset),
    }
    return {name: row[0] if row else 1 for name, row in ids.items()}


def test_unknown_ids_are_404_not_500(app: Flask, admin_client: FlaskClient, db: Any) -> None:
    for rule in app_rules(app):
        if not rule.arguments:
            continue
        path = concrete_path(rule, dict.fromkeys(rule.arguments, 987654))
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            response = admin_client.open(path, method=method, data={"name": "x"})
            assert response.status_code == 404, (method, path, response.status_code)


def test_wrong_methods_are_405(app: Flask, admin_client: FlaskClient, db: Any) -> None:
    ids = seeded_ids(db)
    adapter = app.url_map.bind("localhost")
    for rule in app_rules(app):
        path = concrete_path(rule, ids)
        allowed = set(adapter.allowed_methods(path))
        for method in {"GET", "POST", "PUT", "DELETE", "PATCH"} - allowed:
            response = admin_client.open(path, method=method)
            assert response.status_code in (404, 405), (method, path, response.status_code)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.sampled_from(
            [
                b"",
                b"{",
                b"[]",
                b"null",
                b'{"model": 5}',
                b'{"model": "m", "messages": {}}',
                b'{"model": "m", "messages": [1, "x", null]}',
                b'{"model": "m", "messages": [{"role": "user", "content": {"a": 1}}]}',
                b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], '
                b'"max_tokens": "lots"}',
            ]
        ),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=10), inner, max_size=3)
            ),
            max_leaves=10,
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_mock_api_answers_json_errors_never_500(client: FlaskClient, body: bytes) -> None:
    response = client.post(
        "/mock_llm/v1/chat/completions", data=body, content_type="application/json"
    )
    assert response.status_code < 500
    if response.status_code >= 400:
        assert "message" in response.get_json()["error"]
