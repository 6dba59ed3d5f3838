"""The configuration pages' logic: forms, list queries, bulk toggles, connection test, import.

Views hand in what the request carried (a mapping of form or query fields) and get back plain
results to render. Forms are parsed here, field by field: text stays exactly as typed so an
invalid form can be shown again, and every problem becomes a message on its field — bad
numbers, bad JSON, a unique constraint lost to a concurrent request — never an exception.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar

from sqlalchemy import case, func, or_, select
from sqlalchemy.exc import DataError, IntegrityError

from webapp.extensions import db
from webapp.llm.clients import ClientSettings
from webapp.llm.errors import describe_upstream_error
from webapp.llm.results import Result
from webapp.llm.secrets import scrub
from webapp.models import (
    CAPABILITY_COLUMNS,
    RESERVED_OPTION_KEYS,
    LLMModel,
    LLMPreset,
    LLMProvider,
    ValidationError,
)
from webapp.services.chat import check_model_connection
from webapp.services.llm_config import client_settings, provider_client, provider_spec

log = logging.getLogger(__name__)

Errors = dict[str, list[str]]
Record = TypeVar("Record", LLMProvider, LLMModel, LLMPreset)

# Primary keys and counters are 32-bit integers in the database.
MAX_INT = 2**31 - 1
# Connection tests and imports answer a person waiting on a page: fail in seconds, not minutes.
QUICK_REQUEST_TIMEOUT = 10.0
QUICK_CONNECT_TIMEOUT = 3.0
MAX_QUERY_LENGTH = 200
MAX_JSON_DEPTH = 32
MAX_API_KEY_LENGTH = 1000
MAX_IMPORT_IDS = 5000
# Errors on fields a form does not show are listed above the form.
BASE = "base"

RESERVED_KEYS_HINT = ", ".join(sorted(RESERVED_OPTION_KEYS))

_WHOLE_NUMBER = re.compile(r"\+?[0-9]+")
_NEGATIVE_NUMBER = re.compile(r"-[0-9]+")
# NUL cannot be stored in PostgreSQL text, and lone surrogates cannot be encoded.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
_NOT_PARSED = object()


# ---------------------------------------------------------------------------------------------
# Forms


@dataclass
class FormState:
    """What a form shows: the values as typed (strings, booleans for checkboxes) and errors."""

    values: dict[str, Any]
    errors: Errors = field(default_factory=dict)
    # A secret the user typed is never sent back; the form says it must be typed again.
    secret_dropped: bool = False

    @property
    def base_errors(self) -> list[str]:
        return self.errors.get(BASE, [])


@dataclass
class SaveResult(Generic[Record]):
    """The saved record, or None with the form to show again."""

    record: Record | None
    form: FormState

    @property
    def ok(self) -> bool:
        return self.record is not None


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def _checked(form: Mapping[str, Any], name: str) -> bool:
    return name in form


def _check_storable(errors: Errors, name: str, text: str) -> None:
    if _UNSTORABLE.search(text):
        _add(errors, name, "must not contain NUL or unpaired surrogate characters")


def _add(errors: Errors, name: str, message: str) -> None:
    errors.setdefault(name, []).append(message)


def parse_count(errors: Errors, name: str, text: str, *, nullable: bool) -> Any:
    """A whole number ≥ 0 from a text field; blank is None when nullable.

    Returns `_NOT_PARSED` (and records why) when the text is not such a number.
    """
    text = text.strip()
    if not text:
        if nullable:
            return None
        _add(errors, name, "can't be blank")
        return _NOT_PARSED
    if _NEGATIVE_NUMBER.fullmatch(text):
        _add(errors, name, "must be greater than or equal to 0")
        return _NOT_PARSED
    if not _WHOLE_NUMBER.fullmatch(text):
        _add(errors, name, "must be a whole number")
        return _NOT_PARSED
    # Checked on the digits, so a ten-thousand-digit number never reaches int().
    digits = text.lstrip("+").lstrip("0") or "0"
    if len(digits) > len(str(MAX_INT)) or int(digits) > MAX_INT:
        _add(errors, name, "is too large")
        return _NOT_PARSED
    return int(digits)


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"number out of range: {text[:40]}")
    return number


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _json_problem(value: Any) -> str | None:
    """Why a decoded JSON value cannot be stored (nesting, NUL, surrogates), or None."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            return f"is nested too deeply (at most {MAX_JSON_DEPTH} levels)"
        if isinstance(item, str) and _UNSTORABLE.search(item):
            return "must not contain NUL or unpaired surrogate characters"
        if isinstance(item, dict):
            pending.extend((key, depth) for key in item)
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
    return None


def parse_json_object(errors: Errors, name: str, text: str) -> Any:
    """A JSON object from a textarea; blank is {}. `_NOT_PARSED` (with an error) otherwise."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as error:
        _add(
            errors,
            name,
            f"is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})",
        )
        return _NOT_PARSED
    except (ValueError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        _add(errors, name, f"is not valid JSON: {reason}")
        return _NOT_PARSED
    if not isinstance(value, dict):
        _add(errors, name, 'must be a JSON object, like {"temperature": 0.7}')
        return _NOT_PARSED
    problem = _json_problem(value)
    if problem:
        _add(errors, name, problem)
        return _NOT_PARSED
    return value


def _pretty_json(value: Any) -> str:
    if not value:
        return "{}"
    return json.dumps(value, indent=2, ensure_ascii=False)


def compact_json(value: Any) -> str:
    """One-line JSON for lists (escaped by the template like any other text)."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _optional_text(text: str) -> str | None:
    return text if text.strip() else None


def _save(
    record: Record,
    attributes: Mapping[str, Any],
    errors: Errors,
    form: FormState,
    fields: Iterable[str],
    renames: Mapping[str, str] | None = None,
) -> SaveResult[Record]:
    """Assign, validate, commit. Any error rolls everything back and lands on a field."""
    with db.session.no_autoflush:
        for name, value in attributes.items():
            if value is not _NOT_PARSED:
                setattr(record, name, value)
        if record.id is None:
            db.session.add(record)
        for name, messages in record.validation_errors().items():
            target = (renames or {}).get(name, name)
            if target not in errors:
                errors[target] = messages
    if not errors:
        try:
            db.session.commit()
            return SaveResult(record, form)
        except ValidationError as error:
            db.session.rollback()
            errors = {(renames or {}).get(k, k): v for k, v in error.errors.items()}
        except IntegrityError as error:
            db.session.rollback()
            errors = _constraint_errors(error)
        except DataError:
            db.session.rollback()
            log.exception("database refused a %s", type(record).__name__)
            errors = {BASE: ["The database refused these values; check them and try again."]}
    else:
        db.session.rollback()
    known = set(fields)
    form.errors = {}
    for name, messages in errors.items():
        form.errors.setdefault(name if name in known else BASE, []).extend(
            messages if name in known else [f"{name.replace('_', ' ')} {m}" for m in messages]
        )
    return SaveResult(None, form)


# Unique constraints another request can win between validation and commit, by the text
# SQLite ("table.column") or PostgreSQL ("constraint name") puts in the error.
_UNIQUE_CONSTRAINTS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("uq_llm_providers_name", "llm_providers.name"), "name", "has already been taken"),
    (
        ("uq_llm_models_llm_provider_id_model", "llm_models.llm_provider_id, llm_models.model"),
        "model",
        "has already been taken for this provider",
    ),
    (("uq_llm_models_key", "llm_models.key"), "key", "has already been taken"),
    (
        ("uq_llm_presets_llm_model_id_key", "llm_presets.llm_model_id, llm_presets.key"),
        "key",
        "has already been taken for this model",
    ),
)


def _constraint_errors(error: IntegrityError) -> Errors:
    text = str(error.orig)
    for markers, name, message in _UNIQUE_CONSTRAINTS:
        if any(marker in text for marker in markers):
            return {name: [message]}
    log.warning("integrity error saving a form: %s", text)
    return {BASE: ["Another change got in first (the record may have been deleted); try again."]}


def get_record(model: type[Record], record_id: int) -> Record | None:
    """The row with this id, or None (ids beyond the column's range included)."""
    if not 0 < record_id <= MAX_INT:
        return None
    return db.session.get(model, record_id)


# ---------------------------------------------------------------------------------------------
# Providers

PROVIDER_FIELDS = (
    "name",
    "api_format",
    "base_url",
    "api_prefix",
    "api_key",
    "headers",
    "llm_options_defaults",
    "message_overhead_tokens",
)


@dataclass(frozen=True)
class ProviderRow:
    provider: LLMProvider
    model_count: int
    enabled_count: int
    headers: list[tuple[str, str]]


def provider_form(provider: LLMProvider | None = None) -> FormState:
    """The values a new or edit form starts with (the API key is never among them)."""
    if provider is None:
        return FormState(
            {
                "name": "",
                "api_format": "openai",
                "base_url": "",
                "api_prefix": "/v1",
                "headers": "{}",
                "llm_options_defaults": "{}",
                "message_overhead_tokens": "0",
                "remove_api_key": False,
            }
        )
    return FormState(
        {
            "name": provider.name,
            "api_format": provider.api_format,
            "base_url": provider.base_url,
            "api_prefix": provider.api_prefix,
            "headers": _pretty_json(dict(masked_headers(provider))),
            "llm_options_defaults": _pretty_json(provider.llm_options_defaults),
            "message_overhead_tokens": str(provider.message_overhead_tokens),
            "remove_api_key": False,
        }
    )


def save_provider(provider: LLMProvider | None, data: Mapping[str, Any]) -> SaveResult[LLMProvider]:
    """Create (provider None) or update a provider from submitted form fields.

    The API key is write-only: blank keeps the stored key, `remove_api_key` clears it.
    """
    text_fields = ("name", "api_format", "base_url", "api_prefix", "headers")
    values: dict[str, Any] = {name: _text(data, name) for name in text_fields}
    values["llm_options_defaults"] = _text(data, "llm_options_defaults")
    values["message_overhead_tokens"] = _text(data, "message_overhead_tokens")
    values["remove_api_key"] = _checked(data, "remove_api_key")
    api_key = _text(data, "api_key").strip()
    form = FormState(values, secret_dropped=bool(api_key))

    errors: Errors = {}
    for name in ("name", "api_format", "base_url", "api_prefix"):
        _check_storable(errors, name, values[name])
    attributes: dict[str, Any] = {
        name: values[name]
        for name in ("name", "api_format", "base_url", "api_prefix")
        if name not in errors
    }
    attributes["headers"] = _keep_hidden_headers(
        errors, provider, parse_json_object(errors, "headers", values["headers"])
    )
    attributes["llm_options_defaults"] = parse_json_object(
        errors, "llm_options_defaults", values["llm_options_defaults"]
    )
    attributes["message_overhead_tokens"] = parse_count(
        errors, "message_overhead_tokens", values["message_overhead_tokens"], nullable=False
    )
    if api_key and values["remove_api_key"]:
        _add(errors, "api_key", "enter a new key or tick “Remove key”, not both")
    elif api_key:
        _check_storable(errors, "api_key", api_key)
        if len(api_key) > MAX_API_KEY_LENGTH:
            _add(errors, "api_key", f"is too long (at most {MAX_API_KEY_LENGTH} characters)")
        if "api_key" not in errors:
            attributes["api_key"] = api_key
    elif values["remove_api_key"]:
        attributes["api_key"] = None
    return _save(provider or LLMProvider(), attributes, errors, form, PROVIDER_FIELDS)


HIDDEN_HEADER_VALUE = "•••• (hidden)"


def _keep_hidden_headers(errors: Errors, provider: LLMProvider | None, headers: Any) -> Any:
    """Secret header values are write-only: the form shows a mask, and a mask sent back
    keeps the stored value (a mask for a header that has none is an error)."""
    if not isinstance(headers, dict):
        return headers
    stored = (provider.headers or {}) if provider is not None else {}
    kept = dict(headers)
    for name, value in headers.items():
        if value != HIDDEN_HEADER_VALUE:
            continue
        if name in stored:
            kept[name] = stored[name]
        else:
            _add(errors, "headers", f"enter the value of {name} (it has no stored value)")
    return kept


def masked_headers(provider: LLMProvider) -> list[tuple[str, str]]:
    """Header names with their values, secret-looking values replaced by a mask."""
    secrets = provider_spec(provider).secrets
    shown = []
    for name, value in (provider.headers or {}).items():
        text = str(value)
        hidden = text in secrets or scrub(text, secrets) != text
        shown.append((name, HIDDEN_HEADER_VALUE if hidden else text))
    return shown


def list_providers() -> list[ProviderRow]:
    """Every provider with its model and enabled-model counts, in one query."""
    counts = (
        select(
            LLMModel.llm_provider_id.label("provider_id"),
            func.count(LLMModel.id).label("total"),
            func.sum(case((LLMModel.enabled, 1), else_=0)).label("enabled"),
        )
        .group_by(LLMModel.llm_provider_id)
        .subquery()
    )
    query = (
        select(
            LLMProvider,
            func.coalesce(counts.c.total, 0),
            func.coalesce(counts.c.enabled, 0),
        )
        .outerjoin(counts, counts.c.provider_id == LLMProvider.id)
        .order_by(func.lower(LLMProvider.name), LLMProvider.id)
    )
    return [
        ProviderRow(provider, int(total), int(enabled), masked_headers(provider))
        for provider, total, enabled in db.session.execute(query)
    ]


def provider_choices() -> list[tuple[int, str]]:
    """(id, name) of every provider, for select boxes (no secrets loaded)."""
    query = select(LLMProvider.id, LLMProvider.name).order_by(
        func.lower(LLMProvider.name), LLMProvider.id
    )
    return [(row.id, row.name) for row in db.session.execute(query)]


def plural(count: int, noun: str) -> str:
    """ "1 model", "3 models"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def delete_record(record: LLMProvider | LLMModel | LLMPreset) -> None:
    """Delete a row; the database cascades to its models and presets."""
    db.session.delete(record)
    db.session.commit()


def count_models(provider: LLMProvider) -> int:
    query = select(func.count(LLMModel.id)).where(LLMModel.llm_provider_id == provider.id)
    return int(db.session.scalar(query) or 0)


def set_all_enabled(provider: LLMProvider, enabled: bool) -> int:
    """Enable or disable every model of a provider; returns how many rows changed."""
    count = provider.enable_all() if enabled else provider.disable_all()
    db.session.commit()
    return count


# ---------------------------------------------------------------------------------------------
# Models

MODEL_FIELDS = (
    "llm_provider_id",
    "model",
    "name",
    "key",
    "enabled",
    "comment",
    *CAPABILITY_COLUMNS,
    "context_window_tokens",
    "message_overhead_tokens",
)
ENABLED_FILTERS = {"yes": True, "no": False}
# Most catalogs fit one page; the pager is for bigger ones. A thousand rows render within the
# page's time budget (bench/models_page.py).
MODELS_PER_PAGE = 1000


@dataclass(frozen=True)
class ModelFilters:
    """The models list filters; values that do not parse are dropped, not errors."""

    provider_id: int | None = None
    enabled: str = ""
    q: str = ""
    page: int = 1

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> ModelFilters:
        enabled = _text(args, "enabled").strip().lower()
        query = _UNSTORABLE.sub("", _text(args, "q")).strip()[:MAX_QUERY_LENGTH]
        return cls(
            _positive_int(_text(args, "provider")),
            enabled if enabled in ENABLED_FILTERS else "",
            query,
            _positive_int(_text(args, "page")) or 1,
        )

    @property
    def active(self) -> bool:
        return bool(self.provider_id or self.enabled or self.q)

    def as_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if self.provider_id:
            args["provider"] = self.provider_id
        if self.enabled:
            args["enabled"] = self.enabled
        if self.q:
            args["q"] = self.q
        return args

    def page_args(self, page: int) -> dict[str, Any]:
        """The query arguments of another page of the same list."""
        return {**self.as_args(), "page": page} if page > 1 else self.as_args()


def _positive_int(text: str) -> int | None:
    """An id-like number from a query argument, or None when it is not one."""
    text = text.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 10):
        return None
    number = int(text)
    return number if 0 < number <= MAX_INT else None


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
            func.sum(case((LLMPreset.key == "default", 1), else_=0)).label("defaults"),
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
    if filters.enabled:
        query = query.where(LLMModel.enabled.is_(ENABLED_FILTERS[filters.enabled]))
    if filters.q:
        pattern = _like_pattern(filters.q)
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


def model_row(model_id: int) -> ModelRow | None:
    """One row of the models list (the same columns, for fragments that redraw a row)."""
    row = db.session.execute(_model_rows_query().where(LLMModel.id == model_id)).first()
    return ModelRow._make(row) if row else None


def model_form(model: LLMModel | None = None, provider_id: int | None = None) -> FormState:
    if model is None:
        values: dict[str, Any] = {
            "llm_provider_id": str(provider_id or ""),
            "model": "",
            "name": "",
            "key": "",
            "enabled": False,
            "comment": "",
            "context_window_tokens": "0",
            "message_overhead_tokens": "",
        }
        values.update({column: False for column in CAPABILITY_COLUMNS})
        return FormState(values)
    values = {
        "llm_provider_id": str(model.llm_provider_id),
        "model": model.model,
        "name": model.name,
        "key": model.key or "",
        "enabled": model.enabled,
        "comment": model.comment or "",
        "context_window_tokens": str(model.context_window_tokens),
        "message_overhead_tokens": (
            "" if model.message_overhead_tokens is None else str(model.message_overhead_tokens)
        ),
    }
    values.update({column: getattr(model, column) for column in CAPABILITY_COLUMNS})
    return FormState(values)


def save_model(model: LLMModel | None, data: Mapping[str, Any]) -> SaveResult[LLMModel]:
    """Create (model None) or update a model from submitted form fields."""
    text_fields = ("llm_provider_id", "model", "name", "key", "comment")
    values: dict[str, Any] = {name: _text(data, name) for name in text_fields}
    for name in ("context_window_tokens", "message_overhead_tokens"):
        values[name] = _text(data, name)
    for name in ("enabled", *CAPABILITY_COLUMNS):
        values[name] = _checked(data, name)
    form = FormState(values)

    errors: Errors = {}
    for name in ("model", "name", "key", "comment"):
        _check_storable(errors, name, values[name])
    attributes: dict[str, Any] = {
        name: values[name] for name in ("model", "name", "key") if name not in errors
    }
    if "comment" not in errors:
        attributes["comment"] = _optional_text(values["comment"])
    attributes.update({name: values[name] for name in ("enabled", *CAPABILITY_COLUMNS)})
    attributes["context_window_tokens"] = parse_count(
        errors, "context_window_tokens", values["context_window_tokens"], nullable=False
    )
    attributes["message_overhead_tokens"] = parse_count(
        errors, "message_overhead_tokens", values["message_overhead_tokens"], nullable=True
    )
    provider = _chosen_provider(errors, values["llm_provider_id"])
    if provider is not None:
        attributes["llm_provider"] = provider
    renames = {"llm_provider": "llm_provider_id"}
    return _save(model or LLMModel(), attributes, errors, form, MODEL_FIELDS, renames)


def _chosen_provider(errors: Errors, text: str) -> LLMProvider | None:
    text = text.strip()
    if not text:
        _add(errors, "llm_provider_id", "must be chosen")
        return None
    provider = None
    if text.isascii() and text.isdigit() and len(text) <= 10:
        provider = get_record(LLMProvider, int(text))
    if provider is None:
        _add(errors, "llm_provider_id", "does not exist (it may have been deleted)")
    return provider


def set_model_enabled(model: LLMModel, enabled: bool) -> None:
    model.enabled = enabled
    db.session.commit()


def quick_client_settings() -> ClientSettings:
    """The app's client settings, capped so a page waits seconds, not minutes, for a provider."""
    base = client_settings()
    return ClientSettings(
        request_timeout=min(base.request_timeout, QUICK_REQUEST_TIMEOUT),
        connect_timeout=min(base.connect_timeout, QUICK_CONNECT_TIMEOUT),
        max_retries=0,
    )


def run_connection_test(model: LLMModel) -> Result:
    """The connection test with short timeouts (a person is waiting on the page)."""
    client = provider_client(model.llm_provider, quick_client_settings())
    return check_model_connection(model, client=client)


# ---------------------------------------------------------------------------------------------
# Presets

PRESET_FIELDS = ("name", "key", "comment", "llm_options_overrides")


def list_presets(model: LLMModel) -> list[LLMPreset]:
    """A model's presets, the default one first, then by name."""
    query = (
        select(LLMPreset)
        .where(LLMPreset.llm_model_id == model.id)
        .order_by(
            case((LLMPreset.key == "default", 0), else_=1),
            func.lower(LLMPreset.name),
            LLMPreset.id,
        )
    )
    return list(db.session.scalars(query))


def preset_form(preset: LLMPreset | None = None, *, first: bool = False) -> FormState:
    """A new preset form suggests the key "default" for a model's first preset."""
    if preset is None:
        key = "default" if first else ""
        return FormState({"name": "", "key": key, "comment": "", "llm_options_overrides": "{}"})
    return FormState(
        {
            "name": preset.name,
            "key": preset.key or "",
            "comment": preset.comment or "",
            "llm_options_overrides": _pretty_json(preset.llm_options_overrides),
        }
    )


def save_preset(
    model: LLMModel, preset: LLMPreset | None, data: Mapping[str, Any]
) -> SaveResult[LLMPreset]:
    """Create (preset None) or update one of `model`'s presets from submitted form fields."""
    values = {name: _text(data, name) for name in PRESET_FIELDS}
    form = FormState(values)
    errors: Errors = {}
    for name in ("name", "key", "comment"):
        _check_storable(errors, name, values[name])
    attributes: dict[str, Any] = {
        name: values[name] for name in ("name", "key") if name not in errors
    }
    if "comment" not in errors:
        attributes["comment"] = _optional_text(values["comment"])
    attributes["llm_options_overrides"] = parse_json_object(
        errors, "llm_options_overrides", values["llm_options_overrides"]
    )
    if preset is None:
        attributes["llm_model"] = model
    return _save(preset or LLMPreset(), attributes, errors, form, PRESET_FIELDS)


# ---------------------------------------------------------------------------------------------
# Import from a provider's /models endpoint


@dataclass(frozen=True)
class ImportCandidate:
    model_id: str
    exists: bool


@dataclass
class ImportListing:
    """What the provider lists, each id marked new or already added; or why it failed."""

    candidates: list[ImportCandidate] = field(default_factory=list)
    error: str | None = None

    @property
    def new_count(self) -> int:
        return sum(not candidate.exists for candidate in self.candidates)


@dataclass(frozen=True)
class ImportOutcome:
    added: list[str]
    skipped: list[str]


def _clean_model_ids(ids: Iterable[Any]) -> tuple[list[str], list[str]]:
    """Usable model ids (stripped, deduplicated, in order) and the ones that are not."""
    usable: list[str] = []
    rejected: list[str] = []
    seen: set[str] = set()
    for raw in ids:
        model_id = raw.strip() if isinstance(raw, str) else ""
        if not model_id or len(model_id) > 300 or _UNSTORABLE.search(model_id):
            rejected.append(str(raw)[:80])
        elif model_id not in seen:
            seen.add(model_id)
            usable.append(model_id)
    return usable, rejected


def _existing_model_ids(provider: LLMProvider) -> set[str]:
    query = select(LLMModel.model).where(LLMModel.llm_provider_id == provider.id)
    return set(db.session.scalars(query))


def fetch_import_listing(provider: LLMProvider) -> ImportListing:
    """Ask the provider's /models endpoint what it serves (short timeouts, no retries)."""
    try:
        page = provider_client(provider, quick_client_settings()).models.list()
        data = getattr(page, "data", None)
        if not isinstance(data, list):
            return ImportListing(error="the provider answered, but not with a list of models")
        ids, _ = _clean_model_ids(getattr(item, "id", None) for item in data)
    except Exception as error:  # the edge: any failure is shown, not raised
        return ImportListing(error=describe_upstream_error(error, provider_spec(provider).secrets))
    existing = _existing_model_ids(provider)
    candidates = [ImportCandidate(model_id, model_id in existing) for model_id in sorted(ids)]
    return ImportListing(candidates[:MAX_IMPORT_IDS])


def import_models(provider: LLMProvider, model_ids: Iterable[Any]) -> ImportOutcome:
    """Create the given models, disabled, named after their id, in one transaction.

    Create-only: ids the provider already has (also ones added meanwhile by someone else) are
    skipped, never changed.
    """
    wanted, rejected = _clean_model_ids(list(model_ids)[:MAX_IMPORT_IDS])
    for _attempt in range(3):
        existing = _existing_model_ids(provider)
        added = [model_id for model_id in wanted if model_id not in existing]
        skipped = [model_id for model_id in wanted if model_id in existing] + rejected
        db.session.add_all(
            LLMModel(llm_provider=provider, model=model_id, name=model_id, enabled=False)
            for model_id in added
        )
        try:
            db.session.commit()
            return ImportOutcome(added, skipped)
        except IntegrityError:
            # Someone imported some of the same ids meanwhile: look again, skip those.
            db.session.rollback()
    return ImportOutcome([], wanted + rejected)
