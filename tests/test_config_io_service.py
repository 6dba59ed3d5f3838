"""Configuration as code: export → import round trips, plans, validation paths, secrets."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, func, select

from seeds import seed_llm
from tests.support.config_rows import configuration_rows
from tests.support.factories import make_model, make_preset, make_provider
from webapp.models import LLMModel, LLMPreset, LLMProvider
from webapp.services.config_io import ConfigFileError, export_yaml, import_yaml

SECRETS = {
    "ACME_API_KEY": "sk-acme-secret-1234",
    "ACME_HEADER_X_TITLE": "ModelDesk",
    "OPENROUTER_HEADER_X_TITLE": "ModelDesk OR",
}


def build_configuration(app: Flask, db: Any) -> None:
    app.config["OPENROUTER_X_TITLE"] = "ModelDesk OR"
    seed_llm(db.session, app.config)
    provider = make_provider(
        api_key="sk-acme-secret-1234",
        headers={"X-Title": "ModelDesk"},
        llm_options_defaults={"top_p": 0.9, "temperature": 0.5},
        message_overhead_tokens=3,
    )
    model = make_model(provider, key="acme", comment="ünïcode ✓", message_overhead_tokens=0)
    make_preset(model, llm_options_overrides={"temperature": 0.1})
    make_preset(model, key=None, name="Keyless", comment="no key")


def wipe(db: Any) -> None:
    db.session.execute(delete(LLMProvider))
    db.session.commit()


def count_rows(db: Any) -> tuple[int, int, int]:
    return tuple(  # type: ignore[return-value]
        db.session.scalar(select(func.count()).select_from(t))
        for t in (LLMProvider, LLMModel, LLMPreset)
    )


def test_export_into_an_empty_database_gives_back_the_same_rows(app: Flask, db: Any) -> None:
    build_configuration(app, db)
    before = configuration_rows()
    text = export_yaml(db.session)
    wipe(db)
    assert count_rows(db) == (0, 0, 0)
    plan = import_yaml(db.session, text, environ=SECRETS)
    assert plan.applied and plan.counts()["~"] == 0 and plan.counts()["-"] == 0
    assert configuration_rows() == before
    assert export_yaml(db.session) == text


def test_exporting_twice_is_byte_identical_and_holds_no_secret(app: Flask, db: Any) -> None:
    build_configuration(app, db)
    first = export_yaml(db.session)
    assert export_yaml(db.session) == first
    assert "sk-acme-secret-1234" not in first and "ModelDesk OR" not in first
    assert "api_key: ${ACME_API_KEY}" in first
    assert "X-Title: ${ACME_HEADER_X_TITLE}" in first
    assert "X-Title: ${OPENROUTER_HEADER_X_TITLE}" in first


def test_a_bad_file_writes_nothing_and_names_the_path(app: Flask, db: Any) -> None:
    build_configuration(app, db)
    before = configuration_rows()
    text = export_yaml(db.session)
    text = text.replace("message_overhead_tokens: 3", "message_overhead_tokens: -1")
    text = text.replace("key: acme\n", "key: mock\n")  # a duplicate of the mock model's key
    text = text.replace("temperature: 0.1", "stream: true")
    with pytest.raises(ConfigFileError) as raised:
        import_yaml(db.session, text, environ=SECRETS)
    paths = {path for path, _ in raised.value.problems}
    assert "providers[0].message_overhead_tokens" in paths
    assert "providers[0].models[0].presets[0].llm_options_overrides" in paths
    assert any(p.endswith(".key") and "models" in p for p in paths)
    messages = " ".join(message for _, message in raised.value.problems)
    assert "reserved keys: stream" in messages
    assert configuration_rows() == before


def test_an_unknown_field_and_a_non_list_are_reported(app: Flask, db: Any) -> None:
    text = "providers:\n- name: X\n  base_url: https://x.example\n  api_prefix: ''\n  colour: red\n"
    text += "  models: nope\n"
    with pytest.raises(ConfigFileError) as raised:
        import_yaml(db.session, text, environ={})
    assert ("providers[0].colour", "is not a known field") in raised.value.problems
    assert ("providers[0].models", "must be a list") in raised.value.problems
    assert count_rows(db) == (0, 0, 0)


def test_dry_run_prints_the_plan_and_writes_nothing(app: Flask, db: Any) -> None:
    build_configuration(app, db)
    before = configuration_rows()
    text = export_yaml(db.session).replace("name: Acme 1", "name: Acme One")
    text = text.replace(
        "- model: acme-1", "- model: acme-2\n    name: Acme 2\n  - model: acme-1", 1
    )
    plan = import_yaml(db.session, text, dry_run=True, environ=SECRETS)
    lines = plan.lines()
    assert "~ model Acme/acme-1" in lines
    assert "    name: 'Acme 1' → 'Acme One'" in lines
    assert "+ model Acme/acme-2" in lines
    assert not plan.applied
    assert configuration_rows() == before


def test_changed_secrets_show_only_as_changed(app: Flask, db: Any) -> None:
    build_configuration(app, db)
    text = export_yaml(db.session)
    plan = import_yaml(db.session, text, environ={**SECRETS, "ACME_API_KEY": "sk-new-secret-9876"})
    output = "\n".join(plan.lines())
    assert "~ provider Acme\n    api_key: changed" in output
    assert "sk-new" not in output and "sk-acme" not in output
    provider = db.session.scalars(select(LLMProvider).where(LLMProvider.name == "Acme")).one()
    assert provider.api_key == "sk-new-secret-9876"


def test_a_missing_secret_variable_is_an_error_unless_kept(app: Flask, db: Any) -> None:
    build_configuration(app, db)
    text = export_yaml(db.session).replace("name: Acme 1", "name: Acme Renamed")
    environ = {"OPENROUTER_HEADER_X_TITLE": "ModelDesk OR"}
    with pytest.raises(ConfigFileError) as raised:
        import_yaml(db.session, text, environ=environ)
    paths = [path for path, _ in raised.value.problems]
    assert paths == ["providers[0].api_key", "providers[0].headers.X-Title"]
    plan = import_yaml(db.session, text, environ=environ, keep_secrets=True)
    assert plan.applied
    provider = db.session.scalars(select(LLMProvider).where(LLMProvider.name == "Acme")).one()
    assert provider.api_key == "sk-acme-secret-1234"
    assert provider.headers == {"X-Title": "ModelDesk"}
    assert provider.llm_models[0].name == "Acme Renamed"


def test_prune_deletes_rows_missing_from_the_file(app: Flask, db: Any) -> None:
    build_configuration(app, db)
    provider = make_provider(name="Doomed")
    make_model(provider, model="gone")
    text = export_yaml(db.session)
    make_provider(name="Extra")
    acme = db.session.scalars(select(LLMProvider).where(LLMProvider.name == "Acme")).one()
    make_model(acme, model="extra-model", name="Extra")
    kept = import_yaml(db.session, text, environ=SECRETS)
    assert kept.counts() == {"+": 0, "~": 0, "-": 0}
    assert "provider Extra" in kept.kept and "model Acme/extra-model" in kept.kept
    plan = import_yaml(db.session, text, prune=True, environ=SECRETS)
    assert "- provider Extra" in plan.lines() and "- model Acme/extra-model" in plan.lines()
    names = set(db.session.scalars(select(LLMProvider.name)))
    assert "Extra" not in names and "Doomed" in names
    models = set(
        db.session.scalars(select(LLMModel.model).where(LLMModel.llm_provider_id == acme.id))
    )
    assert models == {"acme-1"}
