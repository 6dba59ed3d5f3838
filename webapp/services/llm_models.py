"""Models: the filterable, paged list, create / update / delete, the enable toggle and the
connection test."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import case, func, or_, select

from webapp.extensions import db
from webapp.llm.results import Result
from webapp.models import LLMModel, LLMPreset, LLMProvider, ValidationError
from webapp.models.validation import Errors, normalize_key
from webapp.services import records
from webapp.services.chat import check_model_connection
from webapp.services.providers import quick_client

# Most catalogs fit one page; the pager is for bigger ones. A thousand rows render within the
# page's time budget (bench/models_page.py).
MODELS_PER_PAGE = 1000
PROVIDER_GONE = "does not exist (it may have been deleted)"


@dataclass(frozen=True)
class ModelFields:
    """A model's editable values."""

    llm_provider_id: int
    model: str
    name: str
    key: str | None = None
    enabled: bool = False
    comment: str | None = None
    supports_tool_calling: bool = False
    supports_response_format_json_object: bool = False
    supports_response_format_json_schema: bool = False
    supports_streaming: bool = False
    supports_parallel_tool_calls: bool = False
    context_window_tokens: int = 0
    message_overhead_tokens: int | None = None


@dataclass(frozen=True)
class ModelFilters:
    """What the models list shows: one provider or all, enabled or disabled or both, text."""

    provider_id: int | None = None
    enabled: bool | None = None
    text: str = ""
    page: int = 1


class ModelRow(NamedTuple):
    """One line of the models list.

    Plain values rather than ORM objects or result rows: a page builds and reads a thousand of
    them, and model instances (or Row attribute lookups) would cost more than the rest of the
    page put together. `_model_rows_query` selects these fields in this order.
    """

    id: int
    name: str
    model: str
    key: str | None
    enabled: bool
    supports_streaming: bool
    supports_tool_calling: bool
    supports_parallel_tool_calls: bool
    supports_response_format_json_object: bool
    supports_response_format_json_schema: bool
    context_window_tokens: int
    connection_tested_at: datetime | None
    llm_provider_id: int
    provider_name: str
    preset_count: int
    has_default_preset: bool


@dataclass(frozen=True)
class ModelPage:
    """One page of the models list, and whether more follow."""

    rows: list[ModelRow]
    page: int
    per_page: int
    has_next: bool

    @property
    def paged(self) -> bool:
        return self.page > 1 or self.has_next

    @property
    def first_index(self) -> int:
        return (self.page - 1) * self.per_page + 1

    @property
    def last_index(self) -> int:
        return self.first_index + len(self.rows) - 1


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _model_rows_query() -> Any:
    """The models list columns: the model's, its provider's name, its preset counts.

    One query for any number of rows; no provider API key is loaded (let alone decrypted).
    """
    presets = (
        select(
            LLMPreset.llm_model_id.label("model_id"),
            func.count(LLMPreset.id).label("total"),
            func.sum(case((LLMPreset.is_default, 1), else_=0)).label("defaults"),
        )
        .group_by(LLMPreset.llm_model_id)
        .subquery()
    )
    return (
        select(
            LLMModel.id,
            LLMModel.name,
            LLMModel.model,
            LLMModel.key,
            LLMModel.enabled,
            LLMModel.supports_streaming,
            LLMModel.supports_tool_calling,
            LLMModel.supports_parallel_tool_calls,
            LLMModel.supports_response_format_json_object,
            LLMModel.supports_response_format_json_schema,
            LLMModel.context_window_tokens,
            LLMModel.connection_tested_at,
            LLMModel.llm_provider_id,
            LLMProvider.name.label("provider_name"),
            func.coalesce(presets.c.total, 0).label("preset_count"),
            (func.coalesce(presets.c.defaults, 0) > 0).label("has_default_preset"),
        )
        .join(LLMModel.llm_provider)
        .outerjoin(presets, presets.c.model_id == LLMModel.id)
    )


def list_models(filters: ModelFilters, per_page: int | None = None) -> ModelPage:
    """A page of the models list, filtered by provider, enabled state and text.

    One query whatever the page size (one row more than a page tells whether another
    follows). Text matches the name, the model id or the key, case-insensitively.
    """
    per_page = per_page or MODELS_PER_PAGE
    query = _model_rows_query()
    if filters.provider_id:
        query = query.where(LLMModel.llm_provider_id == filters.provider_id)
    if filters.enabled is not None:
        query = query.where(LLMModel.enabled.is_(filters.enabled))
    if filters.text:
        pattern = _like_pattern(filters.text)
        query = query.where(
            or_(
                LLMModel.name.ilike(pattern, escape="\\"),
                LLMModel.model.ilike(pattern, escape="\\"),
                LLMModel.key.ilike(pattern, escape="\\"),
            )
        )
    query = query.order_by(func.lower(LLMProvider.name), func.lower(LLMModel.name), LLMModel.id)
    query = query.limit(per_page + 1).offset((filters.page - 1) * per_page)
    rows = [ModelRow._make(row) for row in db.session.execute(query)]
    return ModelPage(rows[:per_page], filters.page, per_page, len(rows) > per_page)


def find_by_key(key: str) -> LLMModel | None:
    """The model with this key (compared normalized, as keys are stored), or None."""
    return db.session.scalars(select(LLMModel).where(LLMModel.key == normalize_key(key))).first()


@dataclass(frozen=True)
class ModelLookup:
    """What a reference named: the model, or the references that come closest."""

    model: LLMModel | None
    candidates: list[str]


def reference_of(model: LLMModel) -> str:
    """The unambiguous way to name a model: "<provider name>/<model id>"."""
    return f"{model.llm_provider.name}/{model.model}"


def resolve_model(reference: str) -> ModelLookup:
    """The model a person means: its key, "<provider name>/<model id>", or a model id that
    only one provider has. Otherwise the candidates are the ambiguous matches, or the
    close ones (typos), as references."""
    text = reference.strip()
    by_key = find_by_key(text) if text else None
    if by_key is not None:
        return ModelLookup(by_key, [])
    models = list(
        db.session.scalars(select(LLMModel).join(LLMModel.llm_provider).order_by(LLMModel.id))
    )
    named = [m for m in models if reference_of(m).casefold() == text.casefold()]
    same_id = [m for m in models if m.model == text]
    for found in (named, same_id):
        if len(found) == 1:
            return ModelLookup(found[0], [])
    if len(same_id) > 1:
        return ModelLookup(None, sorted(reference_of(m) for m in same_id))
    # Every way a person might spell a model: reference, key, model id, its last part.
    names: dict[str, LLMModel] = {}
    for model in models:
        for name in (reference_of(model), model.key, model.model, model.model.rsplit("/")[-1]):
            if name:
                names.setdefault(name.casefold(), model)
    close = difflib.get_close_matches(text.casefold(), list(names), n=5, cutoff=0.6)
    return ModelLookup(None, sorted({reference_of(names[name]) for name in close}))


def model_row(model_id: int) -> ModelRow | None:
    """One row of the models list (the same columns, for fragments that redraw a row)."""
    row = db.session.execute(_model_rows_query().where(LLMModel.id == model_id)).first()
    return ModelRow._make(row) if row else None


def _attributes(fields: ModelFields) -> dict[str, Any]:
    return {name: getattr(fields, name) for name in ModelFields.__dataclass_fields__}


def model_errors(model: LLMModel | None, fields: ModelFields) -> Errors:
    """The validation errors `fields` would get (field → messages), changing nothing."""
    return records.validation_errors_for(LLMModel, model, _attributes(fields))


def save_model(
    model: LLMModel | None, fields: ModelFields, expected_version: int | None = None
) -> LLMModel:
    """Create (model None) or update a model, possibly moving it to another provider; an
    update based on `expected_version` (the version the edit was loaded with; None: no check).

    Raises `ValidationError` (also when the provider is gone), `IntegrityError` (a
    concurrent request took the model id or key) or `StaleRecordError` (someone else changed
    or deleted it meanwhile), with the session rolled back.
    """
    attributes = _attributes(fields)
    # The relation, not just the column: validation reads the provider from it.
    provider = db.session.get(LLMProvider, attributes.pop("llm_provider_id"))
    if provider is None:
        db.session.rollback()
        raise ValidationError({"llm_provider_id": [PROVIDER_GONE]})
    attributes["llm_provider"] = provider
    return records.save(model or LLMModel(), attributes, expected_version)


def delete_model(model: LLMModel, expected_version: int | None = None) -> None:
    """Delete a model and its presets; `StaleRecordError` (nothing deleted) when it is not at
    `expected_version`."""
    records.delete(model, expected_version)


def set_model_enabled(model: LLMModel, enabled: bool) -> bool:
    """Enable or disable a model; False when it was deleted meanwhile.

    The toggle sets one column to the value the user chose, whatever else changed since the
    list was drawn, so it names no version; it still bumps the version, so an edit form
    opened before it is refused rather than switching the model back.
    """
    model_id = model.id
    model.set_enabled(enabled)
    db.session.commit()
    return db.session.scalar(select(LLMModel.id).where(LLMModel.id == model_id)) is not None


def run_connection_test(model: LLMModel) -> Result:
    """The connection test with short timeouts (a person is waiting on the page)."""
    return check_model_connection(model, client=quick_client(model.llm_provider))
