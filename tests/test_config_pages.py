"""Providers, models and presets pages over HTTP (Flask test client, plus the live mock)."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, select

from tests.support.app import LiveServer
from tests.support.factories import make_model, make_preset, make_provider
from tests.support.net import closed_port_url
from webapp.extensions import db
from webapp.models import LLMModel, LLMPreset, LLMProvider
from webapp.services import llm_models

HTMX = {"HX-Request": "true"}
TABLE = {"HX-Request": "true", "HX-Target": "models-table"}
BOOSTED = {"HX-Request": "true", "HX-Boosted": "true"}
SECRET_KEY_VALUE = "sk-live-abcdefghijklmnop-9876"


def page(response: Any) -> str:
    return response.get_data(as_text=True)


def field_error(body: str, field: str) -> str:
    """The text of a field's error message ("" when there is none)."""
    match = re.search(rf'<p class="field-error" id="{field}-error">(.*?)</p>', body, re.S)
    return html.unescape(match.group(1)) if match else ""


def textarea_value(body: str, field: str) -> str:
    match = re.search(rf'<textarea id="{field}"[^>]*>\n(.*?)</textarea>', body, re.S)
    assert match, f"no textarea {field}"
    return html.unescape(match.group(1))


def input_value(body: str, field: str) -> str:
    match = re.search(rf'<input type="text" id="{field}" name="{field}" value="([^"]*)"', body)
    assert match, f"no input {field}"
    return html.unescape(match.group(1))


def count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def provider_form(**overrides: Any) -> dict[str, Any]:
    values = {
        "name": "Acme",
        "api_format": "openai",
        "base_url": "https://llm.example.com",
        "api_prefix": "/v1",
        "api_key": "",
        "headers": "{}",
        "llm_options_defaults": "{}",
        "message_overhead_tokens": "0",
    }
    values.update(overrides)
    return values


def model_form(provider: LLMProvider, **overrides: Any) -> dict[str, Any]:
    values = {
        "llm_provider_id": str(provider.id),
        "model": "acme-1",
        "name": "Acme One",
        "key": "",
        "comment": "",
        "context_window_tokens": "0",
        "message_overhead_tokens": "",
    }
    values.update(overrides)
    return values


def preset_form(**overrides: Any) -> dict[str, Any]:
    values = {"name": "Creative", "key": "", "comment": "", "llm_options_overrides": "{}"}
    values.update(overrides)
    return values


@contextmanager
def counted_queries() -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


# --- pages render ---------------------------------------------------------------------------


def test_every_config_page_renders_with_a_title(admin_client: FlaskClient) -> None:
    provider = make_provider()
    model = make_model(provider)
    preset = make_preset(model)
    pages = {
        "/providers/": "Providers",
        "/providers/new": "New provider",
        f"/providers/{provider.id}/edit": "Edit Acme",
        "/models/": "Models",
        "/models/new": "New model",
        f"/models/{model.id}/edit": "Edit Acme 1",
        f"/models/{model.id}/presets/": "Presets · Acme 1",
        f"/models/{model.id}/presets/new": "New preset · Acme 1",
        f"/models/{model.id}/presets/{preset.id}/edit": "Edit Default · Acme 1",
    }
    for path, title in pages.items():
        response = admin_client.get(path)
        assert response.status_code == 200, path
        assert f"<title>{title} · ModelDesk</title>" in page(response), path


def test_empty_states_say_what_to_do(admin_client: FlaskClient) -> None:
    assert "No providers yet — run <code>flask seed</code> or add one" in page(
        admin_client.get("/providers/")
    )
    assert "No models yet" in page(admin_client.get("/models/"))
    assert "Add a provider first" in page(admin_client.get("/models/new"))
    model = make_model(make_provider())
    assert "No presets for Acme 1 yet" in page(admin_client.get(f"/models/{model.id}/presets/"))


def test_every_field_has_a_label(admin_client: FlaskClient) -> None:
    model = make_model(make_provider())
    for path in ("/providers/new", f"/models/{model.id}/edit", f"/models/{model.id}/presets/new"):
        body = page(admin_client.get(path))
        ids = re.findall(
            r'<(?:input|select|textarea)(?![^>]*type="hidden")[^>]*\bid="([^"]+)"', body
        )
        assert ids, path
        for field_id in ids:
            assert f'for="{field_id}"' in body, (path, field_id)


def test_user_data_is_escaped(admin_client: FlaskClient) -> None:
    provider = make_provider(name="<script>alert(1)</script>")
    model = make_model(
        provider, name="<img src=x onerror=alert(1)>", model="<svg onload=x>", key="<b>k</b>"
    )
    paths = (
        "/providers/",
        "/models/",
        f"/providers/{provider.id}/edit",
        f"/models/{model.id}/edit",
    )
    for path in paths:
        body = page(admin_client.get(path))
        for raw in ("<script>alert", "<img src=x", "<svg onload", "<b>k</b>"):
            assert raw not in body, (path, raw)
    row = page(admin_client.post(f"/models/{model.id}/toggle", data={"enabled": "1"}, headers=HTMX))
    assert "<img src=x" not in row and "&lt;img src=x onerror=alert(1)&gt;" in row


def test_member_cannot_open_or_change_config(member_client: FlaskClient) -> None:
    provider = make_provider()
    model = make_model(provider)
    for path in ("/providers/", "/models/", f"/models/{model.id}/presets/", "/providers/new"):
        assert member_client.get(path).status_code == 403, path
    posts = (
        f"/providers/{provider.id}/delete",
        f"/providers/{provider.id}/enable_all",
        f"/models/{model.id}/toggle",
        f"/models/{model.id}/test",
    )
    for path in posts:
        assert member_client.post(path, data={"enabled": "1"}).status_code == 403, path
    assert count(LLMProvider) == 1 and not db.session.get(LLMModel, model.id).enabled


# --- providers ------------------------------------------------------------------------------


def test_create_provider_redirects_with_a_flash(admin_client: FlaskClient) -> None:
    data = provider_form(
        headers='{"X-Title": "ModelDesk"}',
        llm_options_defaults='{"temperature": 0.5}',
        message_overhead_tokens="4",
    )
    response = admin_client.post("/providers/", data=data)
    assert response.status_code == 303
    assert response.headers["Location"] == "/providers/"
    provider = db.session.scalars(select(LLMProvider)).one()
    assert provider.headers == {"X-Title": "ModelDesk"}
    assert provider.llm_options_defaults == {"temperature": 0.5}
    assert provider.message_overhead_tokens == 4
    assert provider.api_key is None
    assert "Created provider Acme." in page(admin_client.get("/providers/"))


def test_a_new_provider_needs_an_api_key_unless_unticked(admin_client: FlaskClient) -> None:
    form_page = page(admin_client.get("/providers/new"))
    assert re.search(r'<input type="checkbox" id="requires_api_key"[^>]* checked', form_page)
    assert "Leave it on for hosted APIs" in form_page

    admin_client.post("/providers/", data=provider_form(requires_api_key="1"))
    provider = db.session.scalars(select(LLMProvider)).one()
    assert provider.requires_api_key is True

    admin_client.post(f"/providers/{provider.id}", data=provider_form(version=provider.version))
    db.session.refresh(provider)
    assert provider.requires_api_key is False


def test_htmx_post_gets_hx_location(admin_client: FlaskClient) -> None:
    response = admin_client.post("/providers/", data=provider_form(), headers=BOOSTED)
    assert response.status_code == 204
    assert response.headers["HX-Location"] == "/providers/"


def test_edit_provider(admin_client: FlaskClient) -> None:
    provider = make_provider()
    data = provider_form(name="Renamed", api_prefix="", headers='{"X-A": "b"}')
    response = admin_client.post(f"/providers/{provider.id}", data=data)
    assert response.status_code == 303
    db.session.refresh(provider)
    assert (provider.name, provider.api_prefix, provider.headers) == ("Renamed", "", {"X-A": "b"})


def test_edit_form_shows_json_pretty_and_values(admin_client: FlaskClient) -> None:
    provider = make_provider(llm_options_defaults={"temperature": 0.2}, message_overhead_tokens=3)
    body = page(admin_client.get(f"/providers/{provider.id}/edit"))
    assert textarea_value(body, "llm_options_defaults") == '{\n  "temperature": 0.2\n}'
    assert input_value(body, "message_overhead_tokens") == "3"


def test_provider_list_counts_models_and_enabled(admin_client: FlaskClient) -> None:
    provider = make_provider()
    make_model(provider, model="a", enabled=True)
    make_model(provider, model="b", enabled=False)
    make_provider(name="Empty")
    body = page(admin_client.get("/providers/"))
    assert "2 models</a>" in body and "1 enabled" in body
    assert "0 models</a>" in body


def test_delete_provider_cascades(admin_client: FlaskClient) -> None:
    provider = make_provider()
    make_preset(make_model(provider))
    response = admin_client.post(f"/providers/{provider.id}/delete")
    assert response.status_code == 303
    assert (count(LLMProvider), count(LLMModel), count(LLMPreset)) == (0, 0, 0)
    assert "Deleted provider Acme and its 1 model." in page(admin_client.get("/providers/"))


def test_delete_button_asks_for_confirmation(admin_client: FlaskClient) -> None:
    provider = make_provider()
    body = page(admin_client.get(f"/providers/{provider.id}/edit"))
    assert re.search(r'<button type="submit" class="danger" data-confirm="Delete provider', body)
    assert admin_client.get(f"/providers/{provider.id}/delete").status_code == 405


def test_enable_all_and_disable_all(admin_client: FlaskClient) -> None:
    provider = make_provider()
    other = make_model(make_provider(name="Other"), model="x")
    for name in ("a", "b", "c"):
        make_model(provider, model=name)
    response = admin_client.post(f"/providers/{provider.id}/enable_all")
    assert response.status_code == 303
    enabled = select(func.count()).where(LLMModel.enabled.is_(True))
    assert db.session.scalar(enabled) == 3
    assert "Enabled 3 models of Acme." in page(admin_client.get("/providers/"))
    admin_client.post(f"/providers/{provider.id}/disable_all")
    assert db.session.scalar(enabled) == 0
    db.session.refresh(other)
    assert other.enabled is False


def test_invalid_provider_keeps_every_typed_value(admin_client: FlaskClient) -> None:
    typed = provider_form(
        name="  Typed name ",
        base_url="not a url",
        api_prefix="v1",
        headers='{"X-Title": "a", oops}',
        llm_options_defaults='{"model": "x", "stream": true, "top_k": 5}',
        message_overhead_tokens="twelve",
    )
    response = admin_client.post("/providers/", data=typed)
    body = page(response)
    assert response.status_code == 422
    assert input_value(body, "name") == "  Typed name "
    assert input_value(body, "base_url") == "not a url"
    assert input_value(body, "api_prefix") == "v1"
    assert textarea_value(body, "headers") == '{"X-Title": "a", oops}'
    assert textarea_value(body, "llm_options_defaults") == typed["llm_options_defaults"]
    assert input_value(body, "message_overhead_tokens") == "twelve"
    assert field_error(body, "headers").startswith("Is not valid JSON: Expecting property name")
    assert field_error(body, "llm_options_defaults") == "Contains reserved keys: model, stream"
    assert field_error(body, "message_overhead_tokens") == "Must be a whole number"
    assert field_error(body, "base_url") == "Must be an http(s) URL"
    assert field_error(body, "api_prefix") == "Must be empty or a path starting with /"
    assert 'aria-invalid="true" aria-describedby="headers-hint headers-error"' in body
    assert 'role="alert"' in body
    assert count(LLMProvider) == 0


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [
        ("headers", "[1, 2]", "Must be a JSON object"),
        ("headers", '"just a string"', "Must be a JSON object"),
        ("headers", '{"X-A": "a\\r\\nInjected: 1"}', "Value of X-A must not contain CR, LF or NUL"),
        ("headers", '{"Bad Name": "x"}', "Has an invalid header name"),
        ("headers", '{"X-A": 5}', "Value of X-A must be a string"),
        ("llm_options_defaults", '{"temperature": NaN}', "Is not valid JSON: NaN is not allowed"),
        ("llm_options_defaults", '{"t": 1e999}', "Is not valid JSON: number out of range"),
        ("llm_options_defaults", '{"stop": "a\\u0000b"}', "Must not contain NUL"),
        ("llm_options_defaults", '{"stop": "\\ud800"}', "Must not contain NUL"),
        ("llm_options_defaults", '{"a":' * 40 + "1" + "}" * 40, "Is nested too deeply"),
        ("llm_options_defaults", "[" * 100000 + "]" * 100000, "Is not valid JSON"),
        ("llm_options_defaults", '{"n": ' + "9" * 5000 + "}", "Is not valid JSON"),
        ("llm_options_defaults", "{'single': 1}", "Is not valid JSON: Expecting property name"),
        ("message_overhead_tokens", "-1", "Must be greater than or equal to 0"),
        ("message_overhead_tokens", "1.5", "Must be a whole number"),
        ("message_overhead_tokens", "٣", "Must be a whole number"),
        ("message_overhead_tokens", "9" * 10000, "Is too large"),
        ("message_overhead_tokens", "2147483648", "Is too large"),
        ("message_overhead_tokens", "", "Can't be blank"),
        ("name", "x" * 100_000, "Is too long"),
        ("name", "nul\x00name", "Must not contain NUL"),
    ],
)
def test_bad_provider_input_is_a_field_error(
    admin_client: FlaskClient, field: str, text: str, message: str
) -> None:
    response = admin_client.post("/providers/", data=provider_form(**{field: text}))
    assert response.status_code == 422
    assert field_error(page(response), field).startswith(message)
    assert count(LLMProvider) == 0


def test_unknown_and_malformed_ids_are_404(admin_client: FlaskClient) -> None:
    model = make_model(make_provider())
    other_preset = make_preset(make_model(model.llm_provider, model="other"))
    paths = [
        "/providers/999/edit",
        "/providers/abc/edit",
        "/providers/-1/edit",
        "/providers/99999999999999999999999/edit",
        "/models/2147483648/edit",
        "/models/abc/edit",
        "/models/999/presets/",
        f"/models/{model.id}/presets/{other_preset.id}/edit",
        f"/models/{model.id}/presets/999999999999999999999/edit",
    ]
    for path in paths:
        assert admin_client.get(path).status_code == 404, path
    posts = [
        "/providers/999",
        "/providers/999/delete",
        "/providers/999/enable_all",
        "/providers/99999999999999999999999/import",
        "/models/999/toggle",
        "/models/999/test",
        "/models/999/delete",
        f"/models/{model.id}/presets/{other_preset.id}/delete",
    ]
    for path in posts:
        assert admin_client.post(path, data={"enabled": "1"}).status_code == 404, path
    assert count(LLMPreset) == 1


def test_provider_name_taken_by_a_concurrent_request_is_a_field_error(
    admin_client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_provider(name="Taken")
    # As if the other request committed between our validation and our commit.
    monkeypatch.setattr(LLMProvider, "validation_errors", lambda self: {})
    response = admin_client.post("/providers/", data=provider_form(name="Taken"))
    assert response.status_code == 422
    assert field_error(page(response), "name") == "Has already been taken"
    assert input_value(page(response), "name") == "Taken"
    assert count(LLMProvider) == 1


# --- API key --------------------------------------------------------------------------------


def all_pages(client: FlaskClient, provider: LLMProvider) -> str:
    paths = ["/providers/", f"/providers/{provider.id}/edit", "/models/"]
    return "".join(page(client.get(path)) for path in paths)


def test_api_key_is_write_only(admin_client: FlaskClient) -> None:
    response = admin_client.post("/providers/", data=provider_form(api_key=SECRET_KEY_VALUE))
    assert response.status_code == 303
    provider = db.session.scalars(select(LLMProvider)).one()
    assert provider.api_key == SECRET_KEY_VALUE
    body = all_pages(admin_client, provider)
    assert SECRET_KEY_VALUE not in body and "abcdefghijklmnop" not in body
    assert "…9876" in body


def test_blank_api_key_keeps_the_stored_one(admin_client: FlaskClient) -> None:
    provider = make_provider(api_key=SECRET_KEY_VALUE)
    admin_client.post(f"/providers/{provider.id}", data=provider_form(name="Renamed"))
    db.session.refresh(provider)
    assert (provider.name, provider.api_key) == ("Renamed", SECRET_KEY_VALUE)


def test_new_api_key_replaces_and_remove_clears(admin_client: FlaskClient) -> None:
    provider = make_provider(api_key=SECRET_KEY_VALUE)
    admin_client.post(f"/providers/{provider.id}", data=provider_form(api_key=" sk-new-key-5555 "))
    db.session.refresh(provider)
    assert provider.api_key == "sk-new-key-5555"
    admin_client.post(f"/providers/{provider.id}", data=provider_form(remove_api_key="1"))
    db.session.refresh(provider)
    assert provider.api_key is None
    assert "No key stored." in page(admin_client.get(f"/providers/{provider.id}/edit"))


def test_new_key_and_remove_together_is_an_error(admin_client: FlaskClient) -> None:
    provider = make_provider(api_key=SECRET_KEY_VALUE)
    data = provider_form(api_key="sk-other-1111", remove_api_key="1")
    response = admin_client.post(f"/providers/{provider.id}", data=data)
    assert response.status_code == 422
    assert "not both" in field_error(page(response), "api_key")
    db.session.refresh(provider)
    assert provider.api_key == SECRET_KEY_VALUE


def test_invalid_form_never_echoes_the_typed_key(admin_client: FlaskClient) -> None:
    data = provider_form(name="", api_key=SECRET_KEY_VALUE)
    response = admin_client.post("/providers/", data=data)
    body = page(response)
    assert response.status_code == 422
    assert SECRET_KEY_VALUE not in body
    assert 'name="api_key" value=""' in body
    assert "The key you typed was not kept" in body


def test_unreadable_key_shows_a_warning_and_other_edits_still_save(
    app: Flask, admin_client: FlaskClient
) -> None:
    provider = make_provider(api_key=SECRET_KEY_VALUE)
    original_key = app.config["MODELDESK_ENCRYPTION_KEY"]
    app.config["MODELDESK_ENCRYPTION_KEY"] = "a-different-encryption-key"
    db.session.expire_all()
    assert "key unreadable — re-enter it" in page(admin_client.get("/providers/"))
    edit = page(admin_client.get(f"/providers/{provider.id}/edit"))
    assert "Key unreadable — re-enter it." in edit
    response = admin_client.post(f"/providers/{provider.id}", data=provider_form(name="Still"))
    assert response.status_code == 303
    app.config["MODELDESK_ENCRYPTION_KEY"] = original_key
    db.session.expire_all()
    provider = db.session.get(LLMProvider, provider.id)
    assert (provider.name, provider.api_key) == ("Still", SECRET_KEY_VALUE)


def test_every_header_value_is_masked_in_the_list(admin_client: FlaskClient) -> None:
    make_provider(
        headers={"Authorization": "Bearer tok-0123456789", "X-Title": "my-app-title"},
        api_key=SECRET_KEY_VALUE,
    )
    body = page(admin_client.get("/providers/"))
    assert "tok-0123456789" not in body and "my-app-title" not in body
    assert "Authorization: •••• (hidden)" in body
    assert "X-Title: •••• (hidden)" in body


HEADER_VALUES = {
    "api-key": "azure-key-0123456789",
    "Ocp-Apim-Subscription-Key": "ocp-subscription-31415",
    "X-Title": "my-app-title",
}


def no_header_value_in(where: str, body: str) -> None:
    shown = [value for value in HEADER_VALUES.values() if value in body]
    assert not shown, f"{where} shows {shown}"


def test_no_page_or_fragment_shows_a_header_value(admin_client: FlaskClient) -> None:
    provider = make_provider(headers=HEADER_VALUES)
    model = make_model(provider, key="acme")
    for path, headers in [
        ("/providers/", {}),
        ("/providers/", BOOSTED),
        (f"/providers/{provider.id}/edit", {}),
        (f"/providers/{provider.id}/edit", BOOSTED),
        ("/models/", {}),
        ("/models/", TABLE),
        (f"/models/{model.id}/edit", {}),
        (f"/models/{model.id}/presets/", {}),
    ]:
        response = admin_client.get(path, headers=headers)
        assert response.status_code == 200, path
        no_header_value_in(f"GET {path} {headers}", page(response))
    edit = page(admin_client.get(f"/providers/{provider.id}/edit"))
    assert json.loads(textarea_value(edit, "headers")) == dict.fromkeys(
        HEADER_VALUES, "•••• (hidden)"
    )
    # A failed save shows the form again: the masks, never the values.
    masked = json.dumps(dict.fromkeys(HEADER_VALUES, "•••• (hidden)"))
    refused = admin_client.post(
        f"/providers/{provider.id}", data=provider_form(name="", headers=masked)
    )
    assert refused.status_code == 422
    no_header_value_in("the refused form", page(refused))


def test_saving_masked_header_values_keeps_them_new_ones_replace_removed_ones_go(
    admin_client: FlaskClient,
) -> None:
    provider = make_provider(headers=HEADER_VALUES)
    sent = {
        "api-key": "•••• (hidden)",  # kept
        "X-Title": "another-title",  # replaced
        "X-New": "added-value",  # added; Ocp-Apim-Subscription-Key left out: removed
    }
    data = provider_form(headers=json.dumps(sent))
    assert admin_client.post(f"/providers/{provider.id}", data=data).status_code == 303
    db.session.expire_all()
    assert db.session.get(LLMProvider, provider.id).headers == {
        "api-key": "azure-key-0123456789",
        "X-Title": "another-title",
        "X-New": "added-value",
    }


def test_an_unreadable_header_value_shows_as_such_and_a_save_keeps_it_as_stored(
    app: Flask, admin_client: FlaskClient
) -> None:
    provider = make_provider(headers={"X-Api-Key": "xk-unreadable-123456"})
    original_key = app.config["MODELDESK_ENCRYPTION_KEY"]
    app.config["MODELDESK_ENCRYPTION_KEY"] = "a-different-encryption-key"
    db.session.expire_all()
    listing = page(admin_client.get("/providers/"))
    assert "X-Api-Key: •••• (unreadable — re-enter it)" in listing
    edit = page(admin_client.get(f"/providers/{provider.id}/edit"))
    assert "Header value unreadable — re-enter it:" in edit
    assert json.loads(textarea_value(edit, "headers")) == {
        "X-Api-Key": "•••• (unreadable — re-enter it)"
    }
    data = provider_form(name="Still", headers=textarea_value(edit, "headers"))
    assert admin_client.post(f"/providers/{provider.id}", data=data).status_code == 303
    app.config["MODELDESK_ENCRYPTION_KEY"] = original_key
    db.session.expire_all()
    saved = db.session.get(LLMProvider, provider.id)
    assert (saved.name, saved.headers) == ("Still", {"X-Api-Key": "xk-unreadable-123456"})


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ('{"X-Title": "café"}', "Value of X-Title must be ASCII text"),
        ('{"X-Title": "a\\u007fb"}', "Value of X-Title must not contain control characters"),
        ('{"X-Title": "a\\tb "}', "Value of X-Title must not start or end with a space or tab"),
    ],
)
def test_a_header_value_that_cannot_be_sent_is_refused_with_the_text_kept(
    admin_client: FlaskClient, typed: str, message: str
) -> None:
    provider = make_provider(headers={"X-Title": "my-app-title"})
    response = admin_client.post(f"/providers/{provider.id}", data=provider_form(headers=typed))
    body = page(response)
    assert response.status_code == 422
    assert field_error(body, "headers").startswith(message)
    assert textarea_value(body, "headers") == typed
    db.session.expire_all()
    assert db.session.get(LLMProvider, provider.id).headers == {"X-Title": "my-app-title"}


# --- models ---------------------------------------------------------------------------------


def test_create_edit_delete_model(admin_client: FlaskClient) -> None:
    provider = make_provider()
    data = model_form(
        provider,
        key=" Acme-ONE ",
        enabled="1",
        supports_streaming="1",
        supports_tool_calling="1",
        context_window_tokens="128000",
        message_overhead_tokens="0",
        comment="fast",
    )
    response = admin_client.post("/models/", data=data)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/models/?provider={provider.id}"
    model = db.session.scalars(select(LLMModel)).one()
    assert (model.key, model.enabled, model.context_window_tokens) == ("acme-one", True, 128000)
    assert model.message_overhead_tokens == 0 and model.comment == "fast"
    assert model.supports_streaming and model.supports_tool_calling
    assert not model.supports_response_format_json_schema

    edit = model_form(provider, name="Renamed", message_overhead_tokens="", comment="")
    assert admin_client.post(f"/models/{model.id}", data=edit).status_code == 303
    db.session.refresh(model)
    assert (model.name, model.enabled, model.message_overhead_tokens) == ("Renamed", False, None)
    assert model.comment is None and model.key is None and not model.supports_streaming

    assert admin_client.post(f"/models/{model.id}/delete").status_code == 303
    assert count(LLMModel) == 0
    assert "Deleted model Renamed." in page(admin_client.get("/models/"))


def test_model_can_move_to_another_provider(admin_client: FlaskClient) -> None:
    model = make_model(make_provider())
    other = make_provider(name="Other")
    response = admin_client.post(f"/models/{model.id}", data=model_form(other, model="acme-1"))
    assert response.status_code == 303
    db.session.refresh(model)
    assert model.llm_provider_id == other.id


def test_invalid_model_keeps_every_typed_value(admin_client: FlaskClient) -> None:
    provider = make_provider()
    make_model(provider, model="taken", key="taken-key")
    data = model_form(
        provider,
        model="taken",
        name="",
        key="TAKEN-key",
        context_window_tokens="12k",
        message_overhead_tokens="-4",
        comment="my <notes>",
        supports_streaming="1",
    )
    response = admin_client.post("/models/", data=data)
    body = page(response)
    assert response.status_code == 422
    assert field_error(body, "model") == "Has already been taken for this provider"
    assert field_error(body, "name") == "Can't be blank"
    assert field_error(body, "key") == "Has already been taken"
    assert field_error(body, "context_window_tokens") == "Must be a whole number"
    assert field_error(body, "message_overhead_tokens") == "Must be greater than or equal to 0"
    assert input_value(body, "key") == "TAKEN-key"
    assert input_value(body, "context_window_tokens") == "12k"
    assert input_value(body, "message_overhead_tokens") == "-4"
    assert textarea_value(body, "comment") == "my <notes>"
    assert re.search(r'id="supports_streaming" name="supports_streaming" value="1" checked', body)
    assert not re.search(r'id="enabled" name="enabled" value="1" checked', body)
    assert f'<option value="{provider.id}" selected>' in body
    assert count(LLMModel) == 1


@pytest.mark.parametrize("provider_id", ["", "abc", "999", "99999999999999999999", "-1"])
def test_model_needs_an_existing_provider(admin_client: FlaskClient, provider_id: str) -> None:
    provider = make_provider()
    data = model_form(provider, llm_provider_id=provider_id)
    response = admin_client.post("/models/", data=data)
    assert response.status_code == 422
    assert field_error(page(response), "llm_provider_id")
    assert count(LLMModel) == 0


def test_model_key_taken_by_a_concurrent_request_is_a_field_error(
    admin_client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = make_provider()
    make_model(provider, model="a", key="shared")
    monkeypatch.setattr(LLMModel, "validation_errors", lambda self: {})
    response = admin_client.post("/models/", data=model_form(provider, model="b", key="shared"))
    assert response.status_code == 422
    assert field_error(page(response), "key") == "Has already been taken"
    assert count(LLMModel) == 1


def test_models_list_shows_badges_context_presets_and_last_test(
    admin_client: FlaskClient,
) -> None:
    from webapp.models.types import utcnow

    model = make_model(
        make_provider(),
        supports_streaming=True,
        supports_response_format_json_schema=True,
        context_window_tokens=128000,
        connection_tested_at=utcnow(),
    )
    make_preset(model)
    make_preset(model, key="fast", name="Fast")
    body = page(admin_client.get("/models/"))
    assert 'title="Streaming"' in body and 'title="JSON schema responses"' in body
    assert 'title="Tool calling"' not in body
    assert "128,000" in body
    assert "2 presets</a>" in body and '<span class="badge">default</span>' in body
    assert re.search(r'<span id="tested-\d+" class="tested"><time datetime="', body)


@pytest.fixture
def catalog_rows(app: Flask) -> dict[str, Any]:
    acme = make_provider(name="Acme")
    other = make_provider(name="Other")
    rows = {
        "gpt": make_model(acme, model="gpt-4o", name="GPT 4o", enabled=True, key="main"),
        "mini": make_model(acme, model="gpt-4o-mini", name="Mini", enabled=False),
        "llama": make_model(other, model="llama-3", name="Llama 100%", enabled=True),
    }
    return {"acme": acme, "other": other, **rows}


def listed(body: str) -> set[str]:
    return set(
        re.findall(r'<tr id="model-\d+"[^>]*>.*?class="strong"[^>]*>([^<]+)</a>', body, re.S)
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("", {"GPT 4o", "Mini", "Llama 100%"}),
        ("provider={acme}", {"GPT 4o", "Mini"}),
        ("enabled=yes", {"GPT 4o", "Llama 100%"}),
        ("enabled=no", {"Mini"}),
        ("provider={acme}&enabled=yes", {"GPT 4o"}),
        ("q=mini", {"Mini"}),
        ("q=LLAMA-3", {"Llama 100%"}),
        ("q=MAIN", {"GPT 4o"}),
        ("q=100%25", {"Llama 100%"}),
        ("q=_", set()),
        ("provider=abc&enabled=maybe", {"GPT 4o", "Mini", "Llama 100%"}),
        ("provider=99999999999999999999999", {"GPT 4o", "Mini", "Llama 100%"}),
        ("provider=999", set()),
        ("q=" + "x" * 5000, set()),
        ("q=%00", {"GPT 4o", "Mini", "Llama 100%"}),
    ],
)
def test_models_filters(
    admin_client: FlaskClient, catalog_rows: dict[str, Any], args: str, expected: set[str]
) -> None:
    query = args.format(acme=catalog_rows["acme"].id)
    response = admin_client.get(f"/models/?{query}")
    assert response.status_code == 200
    assert {html.unescape(name) for name in listed(page(response))} == expected


def test_filters_swap_only_the_table_for_htmx(
    admin_client: FlaskClient, catalog_rows: dict[str, Any]
) -> None:
    body = page(admin_client.get("/models/?q=mini", headers=TABLE))
    assert "<html" not in body and '<form class="filters' not in body
    assert listed(body) == {"Mini"}
    assert "1 model matches the filters" in body
    restore = {**TABLE, "HX-History-Restore-Request": "true"}
    assert "<html" in page(admin_client.get("/models/?q=mini", headers=restore))
    assert "<html" in page(admin_client.get("/models/?q=mini", headers=BOOSTED))
    # The GET htmx makes after an HX-Location redirect: HX-Request, no HX-Boosted.
    assert "<html" in page(admin_client.get("/models/?q=mini", headers=HTMX))
    empty = page(admin_client.get("/models/?q=nothing-like-this", headers=TABLE))
    assert "No models match these filters." in empty


def test_filter_form_is_wired_for_htmx(admin_client: FlaskClient) -> None:
    body = page(admin_client.get("/models/"))
    assert 'hx-trigger="input changed delay:300ms, change, submit"' in body
    assert 'hx-target="#models-table"' in body and 'hx-push-url="true"' in body


def test_toggle_returns_the_redrawn_row(
    admin_client: FlaskClient, catalog_rows: dict[str, Any]
) -> None:
    mini = catalog_rows["mini"]
    response = admin_client.post(f"/models/{mini.id}/toggle", data={"enabled": "1"}, headers=HTMX)
    body = page(response)
    assert response.status_code == 200
    assert body.lstrip().startswith(f'<tr id="model-{mini.id}"')
    assert 'value="0" aria-checked="true"' in body
    db.session.refresh(mini)
    assert mini.enabled is True
    response = admin_client.post(f"/models/{mini.id}/toggle", data={"enabled": "0"})
    assert response.status_code == 303
    db.session.refresh(mini)
    assert mini.enabled is False


@pytest.mark.parametrize("value", ["", "yes", "2", "true"])
def test_toggle_with_a_bad_value_is_400(
    admin_client: FlaskClient, catalog_rows: dict[str, Any], value: str
) -> None:
    mini = catalog_rows["mini"]
    response = admin_client.post(f"/models/{mini.id}/toggle", data={"enabled": value})
    assert response.status_code == 400
    db.session.refresh(mini)
    assert mini.enabled is False


def test_models_list_is_paged(admin_client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llm_models, "MODELS_PER_PAGE", 100)
    provider = make_provider()
    db.session.add_all(
        LLMModel(llm_provider=provider, model=f"m{index:03}", name=f"M{index:03}")
        for index in range(105)
    )
    db.session.commit()
    first = page(admin_client.get("/models/"))
    assert len(listed(first)) == 100 and "Showing models 1–100" in html.unescape(first)
    assert 'rel="next" href="/models/?page=2"' in first
    second = page(admin_client.get(f"/models/?provider={provider.id}&page=2"))
    assert listed(second) == {"M100", "M101", "M102", "M103", "M104"}
    assert f'rel="prev" href="/models/?provider={provider.id}"' in second
    assert 'rel="next"' not in second
    assert len(listed(page(admin_client.get("/models/?page=abc")))) == 100
    assert "There is no page 9 of this list." in page(admin_client.get("/models/?page=9"))


def test_models_page_query_count_does_not_grow_with_rows(admin_client: FlaskClient) -> None:
    def add_models(start: int, stop: int) -> None:
        providers = [
            make_provider(name=f"P{start}-{n}", api_key=f"sk-key-{n}-000") for n in range(3)
        ]
        for index in range(start, stop):
            model = LLMModel(llm_provider=providers[index % 3], model=f"m{index}", name=f"M{index}")
            db.session.add(model)
            db.session.add(LLMPreset(llm_model=model, name="Default", key="default"))
        db.session.commit()

    def queries(path: str) -> int:
        db.session.expire_all()
        with counted_queries() as statements:
            assert admin_client.get(path).status_code == 200
        return len(statements)

    add_models(0, 3)
    small = (queries("/models/"), queries("/providers/"), queries("/models/?q=m"))
    add_models(3, 30)
    large = (queries("/models/"), queries("/providers/"), queries("/models/?q=m"))
    assert small == large
    assert "30 models" in page(admin_client.get("/models/"))


# --- connection test ------------------------------------------------------------------------


def test_connection_test_success_updates_last_tested(
    admin_client: FlaskClient, live_server: LiveServer
) -> None:
    provider = make_provider(name="Mock", base_url=live_server.url, api_prefix="/mock_llm/v1")
    model = make_model(provider, model="mock", name="Mock")
    response = admin_client.post(f"/models/{model.id}/test", headers=HTMX)
    body = page(response)
    assert response.status_code == 200
    assert re.search(r"OK · \d+(\.\d+)? ms", body)
    assert f'<span id="tested-{model.id}" class="tested" hx-swap-oob="true"><time' in body
    db.session.refresh(model)
    assert model.connection_tested_at is not None


def test_connection_test_failure_shows_the_reason_quickly(admin_client: FlaskClient) -> None:
    from webapp.models.types import utcnow

    provider = make_provider(base_url=closed_port_url(), api_prefix="/v1")
    model = make_model(provider, connection_tested_at=utcnow())
    started = time.monotonic()
    response = admin_client.post(f"/models/{model.id}/test", headers=HTMX)
    assert time.monotonic() - started < 5
    body = page(response)
    assert response.status_code == 200
    assert "could not reach 127.0.0.1: connection refused" in body
    assert (
        f'<span id="tested-{model.id}" class="tested" hx-swap-oob="true"><span class="muted"'
        in body
    )
    db.session.refresh(model)
    assert model.connection_tested_at is None


def test_connection_test_without_htmx_flashes_and_redirects(admin_client: FlaskClient) -> None:
    model = make_model(make_provider(base_url=closed_port_url()))
    response = admin_client.post(f"/models/{model.id}/test")
    assert response.status_code == 303
    body = page(admin_client.get("/models/"))
    assert (
        "Acme 1: connection failed — " in body
        and "could not reach 127.0.0.1: connection refused" in body
    )


def test_connection_test_error_never_shows_the_key(admin_client: FlaskClient) -> None:
    provider = make_provider(base_url=closed_port_url(), api_key=SECRET_KEY_VALUE)
    model = make_model(provider)
    body = page(admin_client.post(f"/models/{model.id}/test", headers=HTMX))
    assert SECRET_KEY_VALUE not in body


# --- import ---------------------------------------------------------------------------------


def test_import_lists_new_and_existing_ids(
    admin_client: FlaskClient, live_server: LiveServer
) -> None:
    provider = make_provider(name="Mock", base_url=live_server.url, api_prefix="/mock_llm/v1")
    body = page(admin_client.get(f"/providers/{provider.id}/import"))
    assert '<input type="checkbox" name="model_ids" value="mock" checked>' in body
    assert "<title>Import models · Mock · ModelDesk</title>" in body
    make_model(provider, model="mock", name="Mock")
    body = page(admin_client.get(f"/providers/{provider.id}/import"))
    assert '<input type="checkbox" name="model_ids" value="mock" disabled>' in body
    assert "already added" in body


def test_import_creates_ticked_models_disabled(
    admin_client: FlaskClient, live_server: LiveServer
) -> None:
    provider = make_provider(name="Mock", base_url=live_server.url, api_prefix="/mock_llm/v1")
    make_model(provider, model="already", name="Mine", enabled=True)
    ids = ["mock", "extra/model:free", "already", "mock", "", "x" * 400]
    response = admin_client.post(f"/providers/{provider.id}/import", data={"model_ids": ids})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/models/?provider={provider.id}"
    models = {m.model: m for m in db.session.scalars(select(LLMModel))}
    assert set(models) == {"mock", "extra/model:free", "already"}
    assert models["mock"].name == "mock" and models["mock"].enabled is False
    assert models["already"].name == "Mine" and models["already"].enabled is True
    assert "Added 2 models (disabled). Skipped 3" in page(admin_client.get("/models/"))


def test_import_with_nothing_ticked(admin_client: FlaskClient) -> None:
    provider = make_provider()
    response = admin_client.post(f"/providers/{provider.id}/import", data={})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/providers/{provider.id}/import"
    assert count(LLMModel) == 0


def test_import_from_a_provider_that_is_down(admin_client: FlaskClient) -> None:
    provider = make_provider(base_url=closed_port_url(), api_key=SECRET_KEY_VALUE)
    started = time.monotonic()
    response = admin_client.get(f"/providers/{provider.id}/import")
    assert time.monotonic() - started < 5
    body = page(response)
    assert response.status_code == 502
    assert "Could not get the model list from Acme." in body
    assert "could not reach 127.0.0.1: connection refused" in body
    assert SECRET_KEY_VALUE not in body


def test_import_from_a_provider_answering_an_error(
    admin_client: FlaskClient, live_server: LiveServer
) -> None:
    provider = make_provider(
        base_url=live_server.url, api_prefix="/mock_llm/v1/nowhere", headers={"X-A": "1"}
    )
    body = page(admin_client.get(f"/providers/{provider.id}/import"))
    assert "The provider answered HTTP 404" in body


# --- presets --------------------------------------------------------------------------------


def test_create_edit_delete_preset(admin_client: FlaskClient) -> None:
    model = make_model(make_provider())
    assert input_value(page(admin_client.get(f"/models/{model.id}/presets/new")), "key") == (
        "default"
    )
    data = preset_form(name="Default", key="Default", llm_options_overrides='{"temperature": 0}')
    response = admin_client.post(f"/models/{model.id}/presets/", data=data)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/models/{model.id}/presets/"
    preset = db.session.scalars(select(LLMPreset)).one()
    assert (preset.key, preset.llm_options_overrides) == ("default", {"temperature": 0})
    body = page(admin_client.get(f"/models/{model.id}/presets/"))
    assert '<span class="badge on">default</span>' in body
    assert "{&#34;temperature&#34;: 0}" in body or '{"temperature": 0}' in html.unescape(body)

    edit = preset_form(name="Calm", key="", llm_options_overrides="")
    response = admin_client.post(f"/models/{model.id}/presets/{preset.id}", data=edit)
    assert response.status_code == 303
    db.session.refresh(preset)
    assert (preset.name, preset.key, preset.llm_options_overrides) == ("Calm", None, {})
    assert 'badge on">default' not in page(admin_client.get(f"/models/{model.id}/presets/"))

    response = admin_client.post(f"/models/{model.id}/presets/{preset.id}/delete")
    assert response.status_code == 303
    assert count(LLMPreset) == 0


def test_invalid_preset_keeps_typed_text(admin_client: FlaskClient) -> None:
    model = make_model(make_provider())
    make_preset(model, key="default")
    typed = '{"temperature": 0.7,\n "tools": [], "messages": 1'
    data = preset_form(name="", key="DEFAULT", llm_options_overrides=typed)
    response = admin_client.post(f"/models/{model.id}/presets/", data=data)
    body = page(response)
    assert response.status_code == 422
    assert textarea_value(body, "llm_options_overrides") == typed
    assert field_error(body, "llm_options_overrides").startswith("Is not valid JSON")
    assert field_error(body, "key") == "Has already been taken for this model"
    assert field_error(body, "name") == "Can't be blank"
    assert input_value(body, "key") == "DEFAULT"
    data = preset_form(llm_options_overrides='{"tools": [], "messages": []}')
    body = page(admin_client.post(f"/models/{model.id}/presets/", data=data))
    assert field_error(body, "llm_options_overrides") == "Contains reserved keys: messages, tools"
    assert count(LLMPreset) == 1


def test_preset_key_taken_by_a_concurrent_request_is_a_field_error(
    admin_client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_model(make_provider())
    make_preset(model, key="default")
    monkeypatch.setattr(LLMPreset, "validation_errors", lambda self: {})
    data = preset_form(key="default")
    response = admin_client.post(f"/models/{model.id}/presets/", data=data)
    assert response.status_code == 422
    assert field_error(page(response), "key") == "Has already been taken for this model"
    assert count(LLMPreset) == 1


def test_same_preset_key_on_another_model_is_fine(admin_client: FlaskClient) -> None:
    provider = make_provider()
    make_preset(make_model(provider, model="a"), key="default")
    other = make_model(provider, model="b")
    response = admin_client.post(
        f"/models/{other.id}/presets/", data=preset_form(name="D", key="default")
    )
    assert response.status_code == 303


def test_secret_header_values_are_write_only_on_the_edit_form(
    admin_client: FlaskClient, db: Any
) -> None:
    provider = make_provider(headers={"Authorization": "Bearer hdr-top-secret-1", "X-Title": "T"})
    form = admin_client.get(f"/providers/{provider.id}/edit").get_data(as_text=True)
    assert "hdr-top-secret-1" not in form and "•••• (hidden)" in form
    kept = {"Authorization": "•••• (hidden)", "X-Title": "New"}
    data = {
        "name": "Acme",
        "base_url": "https://llm.example.com",
        "api_prefix": "/v1",
        "headers": json.dumps(kept),
        "llm_options_defaults": "{}",
        "message_overhead_tokens": "0",
        "api_format": "openai",
    }
    assert admin_client.post(f"/providers/{provider.id}", data=data).status_code in (302, 303)
    db.session.expire_all()
    assert provider.headers == {"Authorization": "Bearer hdr-top-secret-1", "X-Title": "New"}
    unknown = {**data, "headers": json.dumps({"X-Api-Key": "•••• (hidden)"})}
    response = admin_client.post(f"/providers/{provider.id}", data=unknown)
    assert response.status_code == 422
    assert "the value of X-Api-Key (it has no stored value)" in response.get_data(as_text=True)
