"""Presets: a model's presets in display order and its default one, create / update / delete.

`presets_of` and `default_preset_of` are the one place that decides which preset is a model's
default and in what order presets are shown; the configuration pages and the chat use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, select

from webapp.extensions import db
from webapp.models import LLMModel, LLMPreset
from webapp.models.llm import DEFAULT_PRESET_KEY
from webapp.models.validation import Errors
from webapp.services import records


@dataclass(frozen=True)
class PresetFields:
    """A preset's editable values."""

    name: str
    key: str | None = None
    comment: str | None = None
    llm_options_overrides: dict[str, Any] = field(default_factory=dict)


def presets_of(llm_model_id: int | None) -> list[LLMPreset]:
    """A model's presets: the default one first, then by name (one query)."""
    if llm_model_id is None:
        return []
    query = (
        select(LLMPreset)
        .where(LLMPreset.llm_model_id == llm_model_id)
        .order_by(
            case((LLMPreset.is_default, 0), else_=1),
            func.lower(LLMPreset.name),
            LLMPreset.id,
        )
    )
    return list(db.session.scalars(query))


def default_preset_of(llm_model_id: int) -> LLMPreset | None:
    """The preset a model uses when none is named, if it has one."""
    query = select(LLMPreset).where(LLMPreset.llm_model_id == llm_model_id, LLMPreset.is_default)
    return db.session.scalars(query).first()


def suggested_key(llm_model_id: int) -> str | None:
    """The key a new preset starts with: a model's first preset becomes its default."""
    query = select(LLMPreset.id).where(LLMPreset.llm_model_id == llm_model_id).limit(1)
    return None if db.session.execute(query).first() else DEFAULT_PRESET_KEY


def _attributes(model: LLMModel, fields: PresetFields) -> dict[str, Any]:
    return {
        "llm_model_id": model.id,
        "name": fields.name,
        "key": fields.key,
        "comment": fields.comment,
        "llm_options_overrides": fields.llm_options_overrides,
    }


def preset_errors(model: LLMModel, preset: LLMPreset | None, fields: PresetFields) -> Errors:
    """The validation errors `fields` would get (field → messages), changing nothing."""
    return records.validation_errors_for(LLMPreset, preset, _attributes(model, fields))


def save_preset(
    model: LLMModel,
    preset: LLMPreset | None,
    fields: PresetFields,
    expected_version: int | None = None,
) -> LLMPreset:
    """Create (preset None) or update one of `model`'s presets; an update based on
    `expected_version` (the version the edit was loaded with; None: no check).

    Raises `ValidationError`, `IntegrityError` (a concurrent request took the key) or
    `StaleRecordError` (someone else changed or deleted it meanwhile), with the session
    rolled back.
    """
    attributes = _attributes(model, fields)
    del attributes["llm_model_id"]
    attributes["llm_model"] = model
    return records.save(preset or LLMPreset(), attributes, expected_version)


def delete_preset(preset: LLMPreset, expected_version: int | None = None) -> None:
    """Delete a preset; `StaleRecordError` (nothing deleted) when it is not at
    `expected_version`."""
    records.delete(preset, expected_version)
