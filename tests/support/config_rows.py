"""Every configuration row as plain data, ids and timestamps left out: two databases hold
the same configuration when these are equal."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from webapp.extensions import db
from webapp.models import LLMModel, LLMPreset, LLMProvider

SKIPPED = {"id", "created_at", "updated_at", "version", "llm_provider_id", "llm_model_id"}
SKIPPED_TIMES = {"connection_tested_at", "capabilities_probed_at"}


def _columns(record: Any) -> dict[str, Any]:
    return {
        column.key: getattr(record, column.key)
        for column in type(record).__table__.columns
        if column.key not in SKIPPED | SKIPPED_TIMES
    }


def configuration_rows() -> list[tuple[str, Any, dict[str, Any]]]:
    """(table, natural key, columns) for every provider, model and preset, sorted."""
    db.session.expire_all()
    rows: list[tuple[str, Any, dict[str, Any]]] = []
    for provider in db.session.scalars(select(LLMProvider)):
        rows.append(("provider", provider.name, _columns(provider)))
    for model in db.session.scalars(select(LLMModel)):
        rows.append(("model", (model.llm_provider.name, model.model), _columns(model)))
    for preset in db.session.scalars(select(LLMPreset)):
        natural = (
            preset.llm_model.llm_provider.name,
            preset.llm_model.model,
            preset.key,
            preset.name,
        )
        rows.append(("preset", natural, _columns(preset)))
    return sorted(rows, key=lambda row: (row[0], repr(row[1])))
