"""Optimistic locking in the services: a write based on an older version changes nothing."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from seeds import seed_llm
from tests.support.factories import make_model, make_preset, make_provider
from webapp.extensions import db
from webapp.models import LLMModel, LLMPreset, LLMProvider
from webapp.services import llm_models, presets, providers
from webapp.services.records import StaleRecordError


def fields_of(provider: LLMProvider, **changes: Any) -> providers.ProviderFields:
    fields = providers.ProviderFields(
        name=provider.name, base_url=provider.base_url, api_prefix=provider.api_prefix
    )
    return replace(fields, **changes)


def changed_elsewhere(table: str, row_id: int) -> None:
    """Another request renames the row and commits."""
    with db.engine.begin() as connection:
        connection.execute(
            text(f"UPDATE {table} SET name = 'Theirs', version = version + 1 WHERE id = :id"),
            {"id": row_id},
        )
    db.session.expire_all()


def test_new_rows_start_at_version_1_and_every_save_bumps_it(app: Flask) -> None:
    provider = make_provider()
    model = make_model(provider)
    preset = make_preset(model)
    assert (provider.version, model.version, preset.version) == (1, 1, 1)

    providers.save_provider(provider, fields_of(provider, name="B"), expected_version=1)
    assert provider.version == 2
    # An unchanged save writes nothing, so the version stays.
    providers.save_provider(provider, fields_of(provider), expected_version=2)
    assert provider.version == 2


def test_a_provider_save_based_on_an_older_version_changes_nothing(app: Flask) -> None:
    provider = make_provider()
    changed_elsewhere("llm_providers", provider.id)

    with pytest.raises(StaleRecordError):
        providers.save_provider(provider, fields_of(provider, name="Mine"), expected_version=1)

    db.session.expire_all()
    assert (provider.name, provider.version) == ("Theirs", 2)


def test_a_save_naming_no_version_is_not_checked(app: Flask) -> None:
    provider = make_provider()
    changed_elsewhere("llm_providers", provider.id)

    providers.save_provider(provider, fields_of(provider, name="Mine"))

    db.session.expire_all()
    assert (provider.name, provider.version) == ("Mine", 3)


def test_model_and_preset_saves_and_deletes_based_on_an_older_version_change_nothing(
    app: Flask,
) -> None:
    model = make_model(make_provider())
    preset = make_preset(model)
    changed_elsewhere("llm_models", model.id)
    changed_elsewhere("llm_presets", preset.id)
    model_fields = llm_models.ModelFields(
        llm_provider_id=model.llm_provider_id, model=model.model, name="Mine"
    )

    with pytest.raises(StaleRecordError):
        llm_models.save_model(model, model_fields, expected_version=1)
    with pytest.raises(StaleRecordError):
        presets.save_preset(model, preset, presets.PresetFields(name="Mine"), expected_version=1)
    with pytest.raises(StaleRecordError):
        presets.delete_preset(preset, expected_version=1)
    with pytest.raises(StaleRecordError):
        llm_models.delete_model(model, expected_version=1)

    db.session.expire_all()
    assert db.session.get(LLMModel, model.id).name == "Theirs"
    assert db.session.get(LLMPreset, preset.id).name == "Theirs"


def test_reseeding_after_edits_keeps_them_and_their_versions(app: Flask) -> None:
    seed_llm(db.session, app.config)
    mock = db.session.scalars(db.select(LLMModel).filter_by(key="mock")).one()
    llm_models.set_model_enabled(mock, False)
    assert mock.version == 2

    seed_llm(db.session, app.config)

    db.session.expire_all()
    assert (mock.enabled, mock.version) == (False, 2)
