"""Optimistic locking on the provider, model and preset pages: a save or delete based on a
stale page is refused (409, nothing overwritten), never lost silently and never a 500."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, text

from tests.support.factories import make_model, make_preset, make_provider
from tests.support.net import closed_port_url
from tests.support.users import ADMIN_EMAIL, sign_in
from webapp.extensions import db
from webapp.models import LLMModel, LLMPreset, LLMProvider

HTMX = {"HX-Request": "true"}
CHANGED = "since you opened it — here are the current values; your changes were not saved."


def page(response: Any) -> str:
    return response.get_data(as_text=True)


def loaded_version(body: str) -> str:
    """The version the edit form carries (its hidden field)."""
    match = re.search(
        r'<form method="post" class="card form".*?name="version" value="(\d+)"', body, re.S
    )
    assert match, "the edit form carries no version"
    return match.group(1)


def input_value(body: str, name: str) -> str:
    match = re.search(rf'<input type="text" id="{name}" name="{name}" value="([^"]*)"', body)
    assert match, name
    return html.unescape(match.group(1))


def conflict_rows(body: str) -> list[tuple[str, str, str]]:
    """(field, saved now, you submitted) from the conflict table."""
    rows = re.findall(
        r'<tr><th scope="row">(.*?)</th><td><pre>(.*?)</pre></td><td><pre>(.*?)</pre></td></tr>',
        body,
        re.S,
    )
    return [tuple(html.unescape(cell) for cell in row) for row in rows]  # type: ignore[misc]


@pytest.fixture
def other_admin(app: Flask, admin_client: FlaskClient) -> FlaskClient:
    """A second browser session of an admin, with its own session cookie (CSRF is off for
    test clients). Signed in under a fresh app context: the test's own one remembers the
    first client's user."""
    client = app.test_client()
    with app.app_context():
        sign_in(client, ADMIN_EMAIL)
    return client


@contextmanager
def committed_by_another_request_before_the_write(sql: str, **params: Any) -> Iterator[None]:
    """Run `sql` on another connection (and commit it) just before this session's next flush
    or ORM UPDATE: a change that lands between a request's read and its write."""
    done: list[bool] = []

    def land() -> None:
        if not done:
            done.append(True)
            with db.engine.begin() as connection:
                connection.execute(text(sql), params)

    def before_flush(*_args: Any) -> None:
        land()

    def before_orm_execute(state: Any) -> None:
        if state.is_update or state.is_delete:
            land()

    session = db.session()
    event.listen(session, "before_flush", before_flush)
    event.listen(session, "do_orm_execute", before_orm_execute)
    try:
        yield
    finally:
        event.remove(session, "before_flush", before_flush)
        event.remove(session, "do_orm_execute", before_orm_execute)
    assert done, "the other request's change never landed"


def provider_form(body: str, **changes: str) -> dict[str, str]:
    data = {
        "name": input_value(body, "name"),
        "api_format": "openai",
        "base_url": input_value(body, "base_url"),
        "api_prefix": input_value(body, "api_prefix"),
        "headers": "{}",
        "llm_options_defaults": "{}",
        "message_overhead_tokens": "0",
        "version": loaded_version(body),
    }
    return {**data, **changes}


def model_form(body: str, provider_id: int, **changes: str) -> dict[str, str]:
    data = {
        "llm_provider_id": str(provider_id),
        "model": input_value(body, "model"),
        "name": input_value(body, "name"),
        "key": input_value(body, "key"),
        "context_window_tokens": "0",
        "message_overhead_tokens": "",
        "comment": "",
        "version": loaded_version(body),
    }
    return {**data, **changes}


def preset_form(body: str, **changes: str) -> dict[str, str]:
    data = {
        "name": input_value(body, "name"),
        "key": input_value(body, "key"),
        "llm_options_overrides": '{"temperature": 0.2}',
        "comment": "",
        "version": loaded_version(body),
    }
    return {**data, **changes}


# --- two people edit the same row -------------------------------------------------------


def test_second_save_of_a_provider_is_refused_and_the_first_kept(
    admin_client: FlaskClient, other_admin: FlaskClient
) -> None:
    provider = make_provider(name="Acme", base_url="https://llm.example.com")
    url = f"/providers/{provider.id}"
    mine = page(admin_client.get(f"{url}/edit"))
    theirs = page(other_admin.get(f"{url}/edit"))

    first = other_admin.post(url, data=provider_form(theirs, name="Acme (theirs)"))
    assert first.status_code == 303
    second = admin_client.post(
        url,
        data=provider_form(mine, name="Acme (mine)", base_url="https://mine.example.com"),
        headers=HTMX,
    )

    body = page(second)
    assert second.status_code == 409
    assert f"Someone else changed this provider {CHANGED}" in html.unescape(body)
    # The form holds the current values and the current version; what I typed is listed.
    assert input_value(body, "name") == "Acme (theirs)"
    assert input_value(body, "base_url") == "https://llm.example.com"
    assert loaded_version(body) == "2"
    assert conflict_rows(body) == [
        ("Name", "Acme (theirs)", "Acme (mine)"),
        ("Base URL", "https://llm.example.com", "https://mine.example.com"),
    ]
    db.session.expire_all()
    saved = db.session.get(LLMProvider, provider.id)
    assert (saved.name, saved.base_url, saved.version) == (
        "Acme (theirs)",
        "https://llm.example.com",
        2,
    )
    # Saving the refreshed form is a deliberate overwrite, and it goes through.
    again = admin_client.post(url, data=provider_form(body, name="Acme (mine)"))
    assert again.status_code == 303
    db.session.expire_all()
    assert db.session.get(LLMProvider, provider.id).name == "Acme (mine)"


def test_a_stale_provider_save_does_not_keep_the_typed_api_key(
    admin_client: FlaskClient, other_admin: FlaskClient
) -> None:
    provider = make_provider(api_key="sk-old-key-1234")
    url = f"/providers/{provider.id}"
    mine = page(admin_client.get(f"{url}/edit"))
    other_admin.post(url, data=provider_form(page(other_admin.get(f"{url}/edit")), name="B"))

    second = admin_client.post(url, data=provider_form(mine, api_key="sk-new-typed-9999"))

    body = page(second)
    assert second.status_code == 409
    assert "The API key you typed was not kept: type it again." in body
    assert "sk-new-typed-9999" not in body
    db.session.expire_all()
    assert db.session.get(LLMProvider, provider.id).api_key == "sk-old-key-1234"


def test_second_save_of_a_model_is_refused_and_the_first_kept(
    admin_client: FlaskClient, other_admin: FlaskClient
) -> None:
    provider = make_provider()
    model = make_model(provider, model="acme-1", name="Acme 1")
    url = f"/models/{model.id}"
    mine = page(admin_client.get(f"{url}/edit"))
    theirs = page(other_admin.get(f"{url}/edit"))

    first = other_admin.post(url, data=model_form(theirs, provider.id, name="Theirs", enabled="1"))
    assert first.status_code == 303
    second = admin_client.post(url, data=model_form(mine, provider.id, name="Mine", key="mine"))

    body = page(second)
    assert second.status_code == 409
    assert f"Someone else changed this model {CHANGED}" in html.unescape(body)
    assert input_value(body, "name") == "Theirs"
    assert '<input type="checkbox" id="enabled" name="enabled" value="1" checked' in body
    assert conflict_rows(body) == [
        ("Name", "Theirs", "Mine"),
        ("Key", "", "mine"),
        ("Enabled", "yes", "no"),
    ]
    db.session.expire_all()
    saved = db.session.get(LLMModel, model.id)
    assert (saved.name, saved.key, saved.enabled, saved.version) == ("Theirs", None, True, 2)


def test_second_save_of_a_preset_is_refused_and_the_first_kept(
    admin_client: FlaskClient, other_admin: FlaskClient
) -> None:
    model = make_model(make_provider())
    preset = make_preset(model, name="Default", key="default")
    url = f"/models/{model.id}/presets/{preset.id}"
    mine = page(admin_client.get(f"{url}/edit"))
    theirs = page(other_admin.get(f"{url}/edit"))

    first = other_admin.post(url, data=preset_form(theirs, comment="tuned by them"))
    assert first.status_code == 303
    second = admin_client.post(
        url, data=preset_form(mine, name="Mine", llm_options_overrides='{"temperature": 1.5}')
    )

    body = page(second)
    assert second.status_code == 409
    assert f"Someone else changed this preset {CHANGED}" in html.unescape(body)
    assert input_value(body, "name") == "Default"
    assert conflict_rows(body) == [
        ("Name", "Default", "Mine"),
        ("Option overrides (JSON)", '{\n  "temperature": 0.2\n}', '{"temperature": 1.5}'),
        ("Comment", "tuned by them", ""),
    ]
    db.session.expire_all()
    saved = db.session.get(LLMPreset, preset.id)
    assert (saved.name, saved.comment, saved.llm_options_overrides, saved.version) == (
        "Default",
        "tuned by them",
        {"temperature": 0.2},
        2,
    )


def test_a_stale_form_is_refused_before_its_own_errors_are_listed(
    admin_client: FlaskClient, other_admin: FlaskClient
) -> None:
    provider = make_provider()
    url = f"/providers/{provider.id}"
    mine = page(admin_client.get(f"{url}/edit"))
    other_admin.post(url, data=provider_form(page(other_admin.get(f"{url}/edit")), name="B"))

    second = admin_client.post(url, data=provider_form(mine, base_url="not a url"))

    assert second.status_code == 409
    assert ("Base URL", "https://llm.example.com", "not a url") in conflict_rows(page(second))


def test_a_tampered_version_is_refused_as_stale(admin_client: FlaskClient) -> None:
    provider = make_provider()
    url = f"/providers/{provider.id}"
    body = page(admin_client.get(f"{url}/edit"))

    response = admin_client.post(url, data=provider_form(body, name="B", version="abc"))

    assert response.status_code == 409
    db.session.expire_all()
    assert db.session.get(LLMProvider, provider.id).name == "Acme"


# --- a change landing between a request's read and its write ------------------------------


@pytest.mark.parametrize(
    ("table", "build", "edit_url", "form"),
    [
        (
            "llm_providers",
            lambda: make_provider(),
            lambda row: f"/providers/{row.id}",
            lambda body, row: provider_form(body, name="Mine"),
        ),
        (
            "llm_models",
            lambda: make_model(make_provider()),
            lambda row: f"/models/{row.id}",
            lambda body, row: model_form(body, row.llm_provider_id, name="Mine"),
        ),
        (
            "llm_presets",
            lambda: make_preset(make_model(make_provider())),
            lambda row: f"/models/{row.llm_model_id}/presets/{row.id}",
            lambda body, row: preset_form(body, name="Mine"),
        ),
    ],
    ids=["provider", "model", "preset"],
)
def test_a_save_racing_another_commit_is_refused_not_500(
    admin_client: FlaskClient,
    table: str,
    build: Callable[[], Any],
    edit_url: Callable[[Any], str],
    form: Callable[[str, Any], dict[str, str]],
) -> None:
    row = build()
    url = edit_url(row)
    body = page(admin_client.get(f"{url}/edit"))
    sql = f"UPDATE {table} SET name = 'Theirs', version = version + 1 WHERE id = :id"

    with committed_by_another_request_before_the_write(sql, id=row.id):
        response = admin_client.post(url, data=form(body, row))

    assert response.status_code == 409
    assert input_value(page(response), "name") == "Theirs"
    assert ("Name", "Theirs", "Mine") in conflict_rows(page(response))
    db.session.expire_all()
    assert db.session.get(type(row), row.id).name == "Theirs"


def test_a_save_of_a_provider_deleted_meanwhile_keeps_what_was_typed(
    admin_client: FlaskClient,
) -> None:
    provider_id = make_provider().id
    url = f"/providers/{provider_id}"
    body = page(admin_client.get(f"{url}/edit"))

    with committed_by_another_request_before_the_write(
        "DELETE FROM llm_providers WHERE id = :id", id=provider_id
    ):
        response = admin_client.post(url, data=provider_form(body, name="Mine"))

    text_ = html.unescape(page(response))
    assert response.status_code == 409
    assert "Someone else deleted this provider since you opened it" in text_
    assert input_value(page(response), "name") == "Mine"
    assert 'action="/providers/"' in page(response)  # saving it again creates it
    db.session.expire_all()
    assert db.session.get(LLMProvider, provider_id) is None


# --- deleting and toggling on stale state ------------------------------------------------


def test_deleting_a_provider_changed_since_the_page_loaded_is_refused(
    admin_client: FlaskClient, other_admin: FlaskClient
) -> None:
    provider = make_provider()
    url = f"/providers/{provider.id}"
    mine = page(admin_client.get(f"{url}/edit"))
    other_admin.post(url, data=provider_form(page(other_admin.get(f"{url}/edit")), name="B"))

    response = admin_client.post(f"{url}/delete", data={"version": loaded_version(mine)})

    body = html.unescape(page(response))
    assert response.status_code == 409
    assert "Not deleted: someone else changed this provider since you opened it." in body
    assert input_value(page(response), "name") == "B"
    assert db.session.get(LLMProvider, provider.id) is not None
    # With the page's current version it goes.
    response = admin_client.post(f"{url}/delete", data={"version": loaded_version(body)})
    assert response.status_code == 303
    assert db.session.get(LLMProvider, provider.id) is None


@pytest.mark.parametrize("kind", ["provider", "model", "preset"])
def test_deleting_a_row_deleted_meanwhile_is_not_an_error(
    admin_client: FlaskClient, kind: str
) -> None:
    preset = make_preset(make_model(make_provider()))
    model, provider = preset.llm_model, preset.llm_model.llm_provider
    row, table, url, back = {
        "provider": (provider, "llm_providers", f"/providers/{provider.id}", "/providers/"),
        "model": (model, "llm_models", f"/models/{model.id}", f"/models/?provider={provider.id}"),
        "preset": (
            preset,
            "llm_presets",
            f"/models/{model.id}/presets/{preset.id}",
            f"/models/{model.id}/presets/",
        ),
    }[kind]
    name = row.name

    with committed_by_another_request_before_the_write(
        f"DELETE FROM {table} WHERE id = :id", id=row.id
    ):
        response = admin_client.post(f"{url}/delete", data={"version": str(row.version)})

    assert response.status_code == 303
    assert response.headers["Location"] == back
    assert f"{kind.capitalize()} {name} was already deleted." in page(admin_client.get(back))


def test_deleting_a_model_changed_since_the_page_loaded_is_refused(
    admin_client: FlaskClient,
) -> None:
    model = make_model(make_provider())
    body = page(admin_client.get(f"/models/{model.id}/edit"))
    admin_client.post(f"/models/{model.id}/toggle", data={"enabled": "1"})

    response = admin_client.post(
        f"/models/{model.id}/delete", data={"version": loaded_version(body)}
    )

    assert response.status_code == 409
    assert "Not deleted: someone else changed this model" in html.unescape(page(response))
    assert db.session.get(LLMModel, model.id) is not None


def test_deleting_a_preset_changed_since_the_page_loaded_is_refused(
    admin_client: FlaskClient, other_admin: FlaskClient
) -> None:
    model = make_model(make_provider())
    preset = make_preset(model)
    url = f"/models/{model.id}/presets/{preset.id}"
    mine = page(admin_client.get(f"{url}/edit"))
    other_admin.post(url, data=preset_form(page(other_admin.get(f"{url}/edit")), name="B"))

    response = admin_client.post(f"{url}/delete", data={"version": loaded_version(mine)})

    assert response.status_code == 409
    assert "Not deleted: someone else changed this preset" in html.unescape(page(response))
    assert db.session.get(LLMPreset, preset.id) is not None


def test_the_inline_toggle_bumps_the_version_so_an_older_edit_form_is_refused(
    admin_client: FlaskClient,
) -> None:
    provider = make_provider()
    model = make_model(provider)
    body = page(admin_client.get(f"/models/{model.id}/edit"))

    toggled = admin_client.post(f"/models/{model.id}/toggle", data={"enabled": "1"}, headers=HTMX)
    assert toggled.status_code == 200
    # The same value again changes nothing, so the version stays.
    admin_client.post(f"/models/{model.id}/toggle", data={"enabled": "1"}, headers=HTMX)
    db.session.expire_all()
    assert db.session.get(LLMModel, model.id).version == 2

    response = admin_client.post(f"/models/{model.id}", data=model_form(body, provider.id))
    assert response.status_code == 409
    assert ("Enabled", "yes", "no") in conflict_rows(page(response))
    db.session.expire_all()
    assert db.session.get(LLMModel, model.id).enabled is True


def test_toggling_a_model_deleted_meanwhile_is_a_404_not_a_500(admin_client: FlaskClient) -> None:
    model = make_model(make_provider())

    with committed_by_another_request_before_the_write(
        "DELETE FROM llm_models WHERE id = :id", id=model.id
    ):
        response = admin_client.post(
            f"/models/{model.id}/toggle", data={"enabled": "1"}, headers=HTMX
        )

    assert response.status_code == 404


def test_enable_all_bumps_the_versions_of_the_models_it_changes(
    admin_client: FlaskClient,
) -> None:
    provider = make_provider()
    off = make_model(provider, model="off", name="Off")
    on = make_model(provider, model="on", name="On", enabled=True)
    off_form = page(admin_client.get(f"/models/{off.id}/edit"))
    on_form = page(admin_client.get(f"/models/{on.id}/edit"))

    admin_client.post(f"/providers/{provider.id}/enable_all")

    db.session.expire_all()
    versions = {m.model: m.version for m in db.session.get(LLMProvider, provider.id).llm_models}
    assert versions == {"off": 2, "on": 1}
    stale = admin_client.post(f"/models/{off.id}", data=model_form(off_form, provider.id))
    assert stale.status_code == 409
    current = admin_client.post(
        f"/models/{on.id}", data=model_form(on_form, provider.id, enabled="1", name="On!")
    )
    assert current.status_code == 303


def test_disable_all_bumps_the_versions_of_the_models_it_changes(
    admin_client: FlaskClient,
) -> None:
    provider = make_provider()
    on = make_model(provider, model="on", name="On", enabled=True)
    on_form = page(admin_client.get(f"/models/{on.id}/edit"))

    admin_client.post(f"/providers/{provider.id}/disable_all")

    stale = admin_client.post(
        f"/models/{on.id}", data=model_form(on_form, provider.id, enabled="1")
    )
    assert stale.status_code == 409
    db.session.expire_all()
    assert db.session.get(LLMModel, on.id).enabled is False


def test_a_connection_test_is_not_an_edit(admin_client: FlaskClient) -> None:
    provider = make_provider(base_url=closed_port_url())
    model = make_model(provider)
    body = page(admin_client.get(f"/models/{model.id}/edit"))

    admin_client.post(f"/models/{model.id}/test", headers=HTMX)
    response = admin_client.post(f"/models/{model.id}", data=model_form(body, provider.id))

    assert response.status_code == 303
