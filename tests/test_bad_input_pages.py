"""Throw malformed input at every form and JSON endpoint: never a 500, never a partial write.

Walks the URL map like a hostile (but signed-in, admin) user would: wrong types, huge
strings, CR/LF, invalid JSON, reserved keys, negative numbers, unknown ids, wrong methods.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.routing import Rule

from tests.support.factories import make_model, make_preset, make_provider
from tests.support.routes import app_rules, concrete_path, snapshot

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
    "{",
    "[]",
    "null",
    '{"model": "x", "stream": true}',
    '{"a": ' * 300 + "1" + "}" * 300,
    "<script>alert(1)</script>",
    "javascript:alert(1)",
    "../../etc/passwd",
    "☃" * 50,
    json.dumps({"X-Test": "a\nb"}),
    json.dumps({"temperature": -5}),
    "true",
    "on",
]
FIELDS = [
    "name",
    "base_url",
    "api_prefix",
    "api_key",
    "remove_api_key",
    "headers",
    "llm_options_defaults",
    "message_overhead_tokens",
    "llm_provider_id",
    "model",
    "key",
    "enabled",
    "comment",
    "context_window_tokens",
    "supports_streaming",
    "supports_tool_calling",
    "llm_options_overrides",
    "model_ids",
    "llm_model_id",
    "llm_preset_id",
    "system_prompt",
    "content",
    "title",
    "email",
    "password",
]

form_data = st.dictionaries(
    st.sampled_from(FIELDS),
    st.one_of(st.sampled_from(NASTY_TEXT), st.text(max_size=200)),
    max_size=8,
)


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
    ids = (
        seeded_ids(db)
        if not db.session.query(db.metadata.tables["llm_providers"]).count()
        else _existing_ids(db)
    )
    for rule in post_rules(app):
        before = snapshot(db)
        response = admin_client.post(concrete_path(rule, ids), data=data)
        assert response.status_code < 500, (rule.rule, data, response.status_code)
        if 400 <= response.status_code < 500:
            assert snapshot(db) == before, (rule.rule, data)
        db.session.rollback()


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
