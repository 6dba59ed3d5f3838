"""The History page (admins only) and `flask config history`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select

from tests.support.factories import make_model, make_provider
from tests.support.users import ADMIN_EMAIL
from webapp.models import ConfigChange, acting_as
from webapp.services import records

SECRET = "sk-page-secret-1357"


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
    return {**values, **overrides}


def test_page_edits_are_recorded_with_the_users_email(admin_client: FlaskClient, db: Any) -> None:
    response = admin_client.post("/providers/", data=provider_form(api_key=SECRET))
    assert response.status_code == 303
    provider_id = db.session.scalars(select(ConfigChange.entity_id)).one()
    response = admin_client.post(
        f"/providers/{provider_id}", data=provider_form(name="Renamed", api_key="")
    )
    assert response.status_code == 303
    rows = db.session.scalars(select(ConfigChange).order_by(ConfigChange.id)).all()
    assert [(c.action, c.actor) for c in rows] == [
        ("create", ADMIN_EMAIL),
        ("update", ADMIN_EMAIL),
    ]
    assert rows[1].changes["name"] == {"before": "Acme", "after": "Renamed"}
    body = admin_client.get("/history/").get_data(as_text=True)
    assert "Renamed" in body and ADMIN_EMAIL in body
    assert "name: &#39;Acme&#39; → &#39;Renamed&#39;" in body
    assert SECRET not in body


def test_history_page_filters_by_type_and_actor(admin_client: FlaskClient, db: Any) -> None:
    with acting_as("flask seed"):
        provider = make_provider(name="Seeded")
    with acting_as("bob@example.com"):
        make_model(provider, model="bobs-model")
    body = admin_client.get("/history/?type=model").get_data(as_text=True)
    assert "Seeded/bobs-model" in body and "provider <span" not in body
    body = admin_client.get("/history/?actor=flask+seed").get_data(as_text=True)
    assert "bobs-model" not in body and "Seeded" in body
    assert admin_client.get("/history/?type=nonsense").status_code == 200


def test_providers_and_models_pages_link_to_history(admin_client: FlaskClient) -> None:
    for url in ("/providers/", "/models/"):
        assert 'href="/history/"' in admin_client.get(url).get_data(as_text=True)


def test_each_provider_and_model_has_its_own_history(admin_client: FlaskClient, db: Any) -> None:
    first = make_provider(name="First")
    second = make_provider(name="Second")
    model = make_model(first, model="only-mine")
    second.name = "Second, renamed"
    db.session.commit()

    provider_page = admin_client.get(f"/providers/{first.id}/edit").get_data(as_text=True)
    model_page = admin_client.get(f"/models/{model.id}/edit").get_data(as_text=True)
    own = admin_client.get(f"/history/?type=provider&id={first.id}").get_data(as_text=True)
    of_model = admin_client.get(f"/history/?type=model&id={model.id}").get_data(as_text=True)

    assert f'href="/history/?type=provider&amp;id={first.id}"' in provider_page
    assert f'href="/history/?type=model&amp;id={model.id}"' in model_page
    assert "The history of one provider" in own and "First" in own
    assert "Second" not in own and "only-mine" not in own
    assert "First/only-mine" in of_model and "Second" not in of_model
    # An id without a type, or one that is not an id, shows everything (never an error).
    assert admin_client.get("/history/?id=abc&type=provider").status_code == 200
    assert "Second" in admin_client.get(f"/history/?id={first.id}").get_data(as_text=True)


def test_members_are_refused_the_history(member_client: FlaskClient) -> None:
    assert member_client.get("/history/").status_code == 403


def test_cli_history_and_json(app: Flask, runner: FlaskCliRunner, db: Any, tmp_path: Path) -> None:
    result = runner.invoke(args=["config", "history"])
    assert result.output.strip() == "no changes"
    provider = make_provider(api_key=SECRET)
    text_file = runner.invoke(args=["config", "export"]).output
    assert SECRET not in text_file
    target = tmp_path / "c.yaml"
    target.write_text(text_file.replace("message_overhead_tokens: 0", "message_overhead_tokens: 7"))
    result = runner.invoke(args=["config", "import", str(target), "--keep-secrets"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["config", "history", "--since", "1"])
    assert result.exit_code == 0
    assert "flask config import  update provider Acme" in result.output
    assert "    message_overhead_tokens: 0 → 7" in result.output
    data = json.loads(runner.invoke(args=["config", "history", "--json"]).output)
    assert [(row["action"], row["actor"]) for row in data] == [
        ("update", "flask config import"),
        ("create", "system"),
    ]
    assert data[0]["entity_id"] == provider.id
    assert SECRET not in json.dumps(data)
    assert "Example:" in runner.invoke(args=["config", "history", "--help"]).output


def test_restore_applies_the_before_values_and_is_recorded(
    admin_client: FlaskClient, db: Any
) -> None:
    model = make_model(make_provider(), context_window_tokens=100)
    records.save(model, {"name": "Changed", "context_window_tokens": 200})
    update = db.session.scalars(select(ConfigChange).where(ConfigChange.action == "update")).one()
    body = admin_client.get("/history/").get_data(as_text=True)
    assert f'action="/history/{update.id}/restore"' in body
    response = admin_client.post(f"/history/{update.id}/restore")
    assert response.status_code == 303
    db.session.expire_all()
    assert (model.name, model.context_window_tokens) == ("Acme 1", 100)
    latest = db.session.scalars(select(ConfigChange).order_by(ConfigChange.id.desc())).first()
    assert latest is not None and latest.actor == ADMIN_EMAIL
    assert latest.changes["name"] == {"before": "Changed", "after": "Acme 1"}
    assert "Restored the earlier values." in admin_client.get("/history/").get_data(as_text=True)


def test_restore_of_a_deleted_row_changes_nothing(admin_client: FlaskClient, db: Any) -> None:
    provider = make_provider()
    records.save(provider, {"name": "Renamed"})
    update = db.session.scalars(select(ConfigChange).where(ConfigChange.action == "update")).one()
    records.delete(provider)
    count = len(db.session.scalars(select(ConfigChange)).all())
    response = admin_client.post(f"/history/{update.id}/restore", follow_redirects=True)
    assert "Nothing restored: provider Renamed no longer exists." in response.get_data(as_text=True)
    assert len(db.session.scalars(select(ConfigChange)).all()) == count


def test_members_cannot_restore(member_client: FlaskClient) -> None:
    assert member_client.post("/history/1/restore").status_code == 403


def test_flask_seed_names_itself_in_the_history(
    app: Flask, runner: FlaskCliRunner, db: Any
) -> None:
    result = runner.invoke(args=["seed"])
    assert result.exit_code == 0, result.output
    actors = set(db.session.scalars(select(ConfigChange.actor)))
    assert actors == {"flask seed"}
