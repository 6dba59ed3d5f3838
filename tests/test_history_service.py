"""The configuration history: every write path recorded, who and what, never a secret."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from seeds import seed_llm
from tests.support.factories import make_model, make_preset, make_provider
from webapp.models import ConfigChange, LLMProvider, acting_as
from webapp.services import records
from webapp.services.config_io import ConfigFileError, export_yaml, import_yaml
from webapp.services.history import describe

SECRET = "sk-history-secret-4321"
HEADER_SECRET = "header-secret-value"


def changes(db: Any, **where: Any) -> list[ConfigChange]:
    query = select(ConfigChange).order_by(ConfigChange.id)
    for name, value in where.items():
        query = query.where(getattr(ConfigChange, name) == value)
    return list(db.session.scalars(query))


def every_history_text(db: Any) -> str:
    return json.dumps([(c.entity_label, c.changes) for c in changes(db)], ensure_ascii=False)


def test_create_update_delete_are_recorded_field_by_field(app: Flask, db: Any) -> None:
    with acting_as("script"):
        provider = make_provider()
        model = make_model(provider)
        records.save(model, {"name": "Acme One", "context_window_tokens": 1000})
        records.delete(model)
    rows = [(c.action, c.entity_type, c.entity_label, c.actor) for c in changes(db)]
    assert rows == [
        ("create", "provider", "Acme", "script"),
        ("create", "model", "Acme/acme-1", "script"),
        ("update", "model", "Acme/acme-1", "script"),
        ("delete", "model", "Acme/acme-1", "script"),
    ]
    update = changes(db, action="update")[0]
    assert update.changes == {
        "name": {"before": "Acme 1", "after": "Acme One"},
        "context_window_tokens": {"before": 0, "after": 1000},
    }
    assert describe(update.changes) == [
        "context_window_tokens: 0 → 1000",
        "name: 'Acme 1' → 'Acme One'",
    ]
    created = changes(db, action="create", entity_type="model")[0]
    assert created.changes["model"] == {"before": None, "after": "acme-1"}


def test_deleting_a_provider_records_what_the_cascade_deletes(app: Flask, db: Any) -> None:
    provider = make_provider()
    make_preset(make_model(provider))
    records.delete(provider)
    deleted = {(c.entity_type, c.entity_label) for c in changes(db, action="delete")}
    assert deleted == {
        ("provider", "Acme"),
        ("model", "Acme/acme-1"),
        ("preset", "Acme/acme-1/default"),
    }


def test_secrets_never_reach_the_history(app: Flask, db: Any) -> None:
    provider = make_provider(api_key=SECRET, headers={"X-Title": HEADER_SECRET})
    records.save(provider, {"api_key": SECRET + "-new", "headers": {"X-Other": HEADER_SECRET}})
    records.delete(provider)
    text = every_history_text(db)
    assert SECRET not in text and HEADER_SECRET not in text
    update = changes(db, action="update")[0]
    assert update.changes["api_key"] == {"changed": True}
    assert update.changes["headers"]["changed"] is True
    assert describe(update.changes)[0] == "api_key: changed"


def test_bulk_enable_is_recorded(app: Flask, db: Any) -> None:
    provider = make_provider()
    make_model(provider, model="a", enabled=False)
    make_model(provider, model="b", enabled=True)
    with acting_as("someone@example.com"):
        provider.enable_all()
        db.session.commit()
    update = changes(db, action="update")
    assert [(c.entity_label, c.actor, c.changes) for c in update] == [
        ("Acme/a", "someone@example.com", {"enabled": {"before": False, "after": True}})
    ]


def test_seeds_are_recorded_as_the_seed(app: Flask, db: Any) -> None:
    seed_llm(db.session, app.config)
    rows = changes(db)
    assert rows and {c.actor for c in rows} == {"seed"}
    assert {c.action for c in rows} == {"create"}
    seed_llm(db.session, app.config)  # create-only: the second run changes nothing
    assert len(changes(db)) == len(rows)


def test_an_import_is_recorded_and_a_failed_one_leaves_no_history(app: Flask, db: Any) -> None:
    make_model(make_provider(api_key=SECRET))
    text = export_yaml(db.session)
    before = len(changes(db))
    with acting_as("flask config import"):
        import_yaml(
            db.session,
            text.replace("name: Acme 1", "name: Imported"),
            environ={"ACME_API_KEY": SECRET + "-rotated"},
        )
    new = changes(db)[before:]
    assert [(c.action, c.entity_label, c.actor) for c in new] == [
        ("update", "Acme", "flask config import"),
        ("update", "Acme/acme-1", "flask config import"),
    ]
    assert SECRET not in every_history_text(db)
    count = len(changes(db))
    bad = text.replace("context_window_tokens: 0", "context_window_tokens: -1")
    with pytest.raises(ConfigFileError):
        import_yaml(db.session, bad, keep_secrets=True, environ={})
    assert len(changes(db)) == count
    assert db.session.scalars(select(LLMProvider)).one().llm_models[0].name == "Imported"
