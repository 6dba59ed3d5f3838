"""Providers: the list with model counts, create / update / delete, enable or disable all
models, the write-only API key and header values."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any

import openai
from sqlalchemy import case, func, select

from webapp.extensions import db
from webapp.models import LLMModel, LLMProvider
from webapp.models.llm import API_FORMATS
from webapp.models.types import is_unreadable
from webapp.models.validation import Errors
from webapp.services import records
from webapp.services.llm_config import client_settings, provider_client

# Connection tests and imports answer a person waiting on a page: fail in seconds, not minutes.
QUICK_REQUEST_TIMEOUT = 10.0
QUICK_CONNECT_TIMEOUT = 3.0
# What a page shows instead of a header value; sent back, it keeps the stored value. (Both
# are non-ASCII, so neither can be a real header value.)
HIDDEN_HEADER_VALUE = "•••• (hidden)"
UNREADABLE_HEADER_VALUE = "•••• (unreadable — re-enter it)"


class KeepStored(enum.Enum):
    """The API key is write-only: leaving it out of an update keeps the stored one."""

    KEEP = "keep"


KEEP_API_KEY = KeepStored.KEEP


@dataclass(frozen=True)
class ProviderFields:
    """A provider's editable values. `api_key`: a new key, None to remove it, or KEEP_API_KEY."""

    name: str
    base_url: str
    api_prefix: str
    api_format: str = API_FORMATS[0]
    headers: dict[str, Any] = field(default_factory=dict)
    llm_options_defaults: dict[str, Any] = field(default_factory=dict)
    message_overhead_tokens: int = 0
    requires_api_key: bool = True
    api_key: str | KeepStored | None = KEEP_API_KEY


@dataclass(frozen=True)
class ProviderRow:
    provider: LLMProvider
    model_count: int
    enabled_count: int


def find_by_name(name: str) -> LLMProvider | None:
    """The provider with this name (case-insensitive), or None."""
    query = select(LLMProvider).where(func.lower(LLMProvider.name) == name.strip().lower())
    return db.session.scalars(query).first()


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
        ProviderRow(provider, int(total), int(enabled))
        for provider, total, enabled in db.session.execute(query)
    ]


def provider_choices() -> list[tuple[int, str]]:
    """(id, name) of every provider, for select boxes (no secrets loaded)."""
    query = select(LLMProvider.id, LLMProvider.name).order_by(
        func.lower(LLMProvider.name), LLMProvider.id
    )
    return [(row.id, row.name) for row in db.session.execute(query)]


def _attributes(fields: ProviderFields) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "name": fields.name,
        "api_format": fields.api_format,
        "base_url": fields.base_url,
        "api_prefix": fields.api_prefix,
        "headers": fields.headers,
        "llm_options_defaults": fields.llm_options_defaults,
        "message_overhead_tokens": fields.message_overhead_tokens,
        "requires_api_key": fields.requires_api_key,
    }
    if fields.api_key is not KEEP_API_KEY:
        attributes["api_key"] = fields.api_key
    return attributes


def provider_errors(provider: LLMProvider | None, fields: ProviderFields) -> Errors:
    """The validation errors `fields` would get (field → messages), changing nothing."""
    return records.validation_errors_for(LLMProvider, provider, _attributes(fields))


def save_provider(
    provider: LLMProvider | None, fields: ProviderFields, expected_version: int | None = None
) -> LLMProvider:
    """Create (provider None) or update a provider; an update based on `expected_version`
    (the version the edit was loaded with; None: no check).

    Raises `ValidationError`, `IntegrityError` (a concurrent request took the name) or
    `StaleRecordError` (someone else changed or deleted it meanwhile), with the session
    rolled back.
    """
    return records.save(provider or LLMProvider(), _attributes(fields), expected_version)


def delete_provider(provider: LLMProvider, expected_version: int | None = None) -> int:
    """Delete a provider with its models and their presets; returns how many models went.

    Raises `StaleRecordError` (nothing deleted) when it is not at `expected_version`.
    """
    count = db.session.scalar(
        select(func.count(LLMModel.id)).where(LLMModel.llm_provider_id == provider.id)
    )
    records.delete(provider, expected_version)
    return int(count or 0)


def set_all_enabled(provider: LLMProvider, enabled: bool) -> int:
    """Enable or disable every model of a provider; returns how many rows changed."""
    count = provider.enable_all() if enabled else provider.disable_all()
    db.session.commit()
    return count


def masked_headers(provider: LLMProvider) -> list[tuple[str, str]]:
    """Header names with a mask for every value: header values are write-only, like the key.

    A value the current encryption key cannot decrypt shows as UNREADABLE_HEADER_VALUE.
    """
    return [
        (name, UNREADABLE_HEADER_VALUE if is_unreadable(value) else HIDDEN_HEADER_VALUE)
        for name, value in (provider.headers or {}).items()
    ]


def unmask_headers(
    provider: LLMProvider | None, headers: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """`headers` with each mask put back to the stored value (a new value replaces it; a
    header left out is removed).

    An unreadable stored value sent back masked stays as it is stored (still unreadable,
    never sent). Also returns the names sent masked that have no stored value (the user
    must type them).
    """
    stored = (provider.headers or {}) if provider is not None else {}
    kept = dict(headers)
    missing = []
    for name, value in headers.items():
        if value not in (HIDDEN_HEADER_VALUE, UNREADABLE_HEADER_VALUE):
            continue
        if name in stored:
            kept[name] = stored[name]
        else:
            missing.append(name)
    return kept, missing


def quick_client(provider: LLMProvider) -> openai.OpenAI:
    """The provider's client with the app's timeouts capped: a person waits on the page."""
    base = client_settings()
    settings = replace(
        base,
        request_timeout=min(base.request_timeout, QUICK_REQUEST_TIMEOUT),
        connect_timeout=min(base.connect_timeout, QUICK_CONNECT_TIMEOUT),
        max_retries=0,
    )
    return provider_client(provider, settings)
