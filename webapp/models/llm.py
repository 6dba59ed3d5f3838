"""The three configuration tables: providers → models → presets."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from flask import current_app, has_app_context
from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    false,
    select,
    text,
    true,
    update,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, Session, mapped_column, object_session, relationship, validates

from webapp.extensions import db
from webapp.models import validation as v
from webapp.models.types import (
    UNREADABLE,
    EncryptedHeaderValues,
    EncryptedString,
    JSONObject,
    UTCDateTime,
    is_unreadable,
    utcnow,
)

API_FORMATS = ("openai",)

# The preset a model uses when none is named: the only place this key is spelled out.
DEFAULT_PRESET_KEY = "default"

CAPABILITY_COLUMNS = (
    "supports_tool_calling",
    "supports_response_format_json_object",
    "supports_response_format_json_schema",
    "supports_streaming",
    "supports_parallel_tool_calls",
)


class RecordMixin:
    """Timestamps, column defaults applied at construction, and per-field validation."""

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False
    )

    def __init__(self, **kwargs: Any) -> None:
        # Defaults now rather than at INSERT, so validation sees what will be stored.
        for column in self.__table__.columns:  # type: ignore[attr-defined]
            default = column.default
            if column.key in kwargs or default is None:
                continue
            kwargs[column.key] = default.arg(None) if default.is_callable else default.arg
        super().__init__(**kwargs)

    def validation_errors(self) -> v.Errors:
        """Field → messages; empty when the record is valid."""
        errors: v.Errors = {}
        # No autoflush: validation runs on half-built objects, before and during flushes.
        with _session_for(self).no_autoflush:
            self._validate(errors)
        return errors

    def _validate(self, errors: v.Errors) -> None:
        raise NotImplementedError


def _session_for(obj: object) -> Session:
    return object_session(obj) or db.session


def _taken(obj: Any, *criteria: Any) -> bool:
    """True when another row of obj's class matches the criteria."""
    model = type(obj)
    query = select(model.id).where(*criteria)
    if obj.id is not None:
        query = query.where(model.id != obj.id)
    return _session_for(obj).execute(query.limit(1)).first() is not None


class LLMProvider(RecordMixin, db.Model):
    __tablename__ = "llm_providers"
    __table_args__ = (
        CheckConstraint("api_format IN ('openai')", name="api_format_supported"),
        CheckConstraint(
            "message_overhead_tokens >= 0", name="message_overhead_tokens_non_negative"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    api_format: Mapped[str] = mapped_column(
        String(32), nullable=False, default="openai", server_default="openai"
    )
    base_url: Mapped[str] = mapped_column(String(2000), nullable=False)
    api_prefix: Mapped[str] = mapped_column(String(200), nullable=False)
    api_key: Mapped[Any] = mapped_column(EncryptedString(), nullable=True)
    # False for servers that take no key (the mock, Ollama-style local servers): the chat
    # picker refuses a keyless model only when its provider says it needs one.
    requires_api_key: Mapped[bool] = mapped_column(
        nullable=False, default=True, server_default=true()
    )
    # Header values are secrets like the key: encrypted at rest, one by one (names readable).
    headers: Mapped[dict[str, Any]] = mapped_column(
        EncryptedHeaderValues(), nullable=False, default=dict, server_default="{}"
    )
    llm_options_defaults: Mapped[dict[str, Any]] = mapped_column(
        JSONObject, nullable=False, default=dict, server_default="{}"
    )
    message_overhead_tokens: Mapped[int] = mapped_column(
        nullable=False, default=0, server_default="0"
    )
    # Optimistic locking (here and on models and presets): every ORM UPDATE or DELETE says
    # "WHERE version = <the version read>" and bumps it, so a write based on a stale read
    # changes nothing and raises StaleDataError instead of overwriting someone else's change.
    # Bulk UPDATEs bump it by hand.
    version: Mapped[int] = mapped_column(nullable=False, default=1, server_default="1")
    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": version}

    llm_models: Mapped[list[LLMModel]] = relationship(
        back_populates="llm_provider",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="LLMModel.name",
    )

    @validates("name", "base_url")
    def _strip(self, _field: str, value: str | None) -> str | None:
        return v.strip_text(value)

    @validates("api_prefix")
    def _strip_prefix(self, _field: str, value: str | None) -> str | None:
        return v.strip_text(value)

    @property
    def api_key_status(self) -> str:
        """ "none", "set" or "unreadable" (stored with another encryption key)."""
        if self.api_key is None:
            return "none"
        return "unreadable" if self.api_key is UNREADABLE else "set"

    @property
    def api_key_hint(self) -> str:
        """A mask with the last 4 characters, safe to show in a page."""
        if self.api_key_status != "set":
            return ""
        key: str = self.api_key
        return "…" + key[-4:] if len(key) > 8 else "…" + "•" * 4

    @property
    def readable_headers(self) -> dict[str, str]:
        """The header values the current encryption key can decrypt (what is sent)."""
        return {
            name: value
            for name, value in (self.headers or {}).items()
            if isinstance(name, str) and isinstance(value, str)
        }

    @property
    def unreadable_header_names(self) -> list[str]:
        """Headers whose stored value was encrypted with another key: re-enter them."""
        return sorted(name for name, value in (self.headers or {}).items() if is_unreadable(value))

    @property
    def endpoint(self) -> str:
        """The base URL the OpenAI SDK is given: base_url + api_prefix."""
        return self.base_url.rstrip("/") + (self.api_prefix or "")

    def _validate(self, errors: v.Errors) -> None:
        v.check_present(errors, "name", self.name)
        v.check_max_length(errors, "name", self.name, 200)
        if self.name and _taken(self, LLMProvider.name == self.name):
            v.add(errors, "name", "has already been taken")
        if self.api_format not in API_FORMATS:
            v.add(errors, "api_format", f"is not supported (supported: {', '.join(API_FORMATS)})")
        v.check_present(errors, "base_url", self.base_url)
        v.check_max_length(errors, "base_url", self.base_url, 2000)
        v.check_http_url(errors, "base_url", self.base_url)
        if has_app_context() and current_app.config.get("BLOCK_PRIVATE_URLS"):
            v.check_public_url(errors, "base_url", self.base_url)
        v.check_api_prefix(errors, "api_prefix", self.api_prefix)
        v.check_max_length(errors, "api_prefix", self.api_prefix, 200)
        if "base_url" not in errors and "api_prefix" not in errors:
            v.check_base_url_prefix(errors, "base_url", self.base_url, self.api_prefix)
        v.check_headers(errors, "headers", self.headers)
        v.check_options(errors, "llm_options_defaults", self.llm_options_defaults)
        v.check_non_negative_int(
            errors, "message_overhead_tokens", self.message_overhead_tokens, nullable=False
        )
        v.check_boolean(errors, "requires_api_key", self.requires_api_key)

    @property
    def lacks_api_key(self) -> bool:
        """It needs a key and has none the current encryption key can read."""
        return self.requires_api_key and self.api_key_status != "set"

    def enable_all(self) -> int:
        """Enable every disabled model of this provider in one UPDATE; returns how many."""
        return self._set_all_enabled(True)

    def disable_all(self) -> int:
        """Disable every enabled model of this provider in one UPDATE; returns how many."""
        return self._set_all_enabled(False)

    def _set_all_enabled(self, enabled: bool) -> int:
        return _set_enabled_where(_session_for(self), enabled, LLMModel.llm_provider_id == self.id)

    def __repr__(self) -> str:
        return f"<LLMProvider {self.id} {self.name!r}>"


class LLMModel(RecordMixin, db.Model):
    __tablename__ = "llm_models"
    __table_args__ = (
        UniqueConstraint("llm_provider_id", "model"),
        CheckConstraint("context_window_tokens >= 0", name="context_window_tokens_non_negative"),
        CheckConstraint(
            "message_overhead_tokens IS NULL OR message_overhead_tokens >= 0",
            name="message_overhead_tokens_non_negative",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    llm_provider_id: Mapped[int] = mapped_column(
        ForeignKey("llm_providers.id", ondelete="CASCADE"), nullable=False, index=True
    )
    model: Mapped[str] = mapped_column(String(300), nullable=False)
    name: Mapped[str] = mapped_column(String(300), nullable=False)
    key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    enabled: Mapped[bool] = mapped_column(nullable=False, default=False, server_default=false())
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    supports_tool_calling: Mapped[bool] = mapped_column(
        nullable=False, default=False, server_default=false()
    )
    supports_response_format_json_object: Mapped[bool] = mapped_column(
        nullable=False, default=False, server_default=false()
    )
    supports_response_format_json_schema: Mapped[bool] = mapped_column(
        nullable=False, default=False, server_default=false()
    )
    supports_streaming: Mapped[bool] = mapped_column(
        nullable=False, default=False, server_default=false()
    )
    supports_parallel_tool_calls: Mapped[bool] = mapped_column(
        nullable=False, default=False, server_default=false()
    )
    context_window_tokens: Mapped[int] = mapped_column(
        nullable=False, default=0, server_default="0"
    )
    message_overhead_tokens: Mapped[int | None] = mapped_column(nullable=True)
    connection_tested_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The last connection test's failure (cleared by a success): the chat picker says why
    # a model stopped working instead of letting members send into the same error.
    connection_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    connection_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # Set by a capability probe (webapp.services.probes), whatever it found.
    capabilities_probed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    version: Mapped[int] = mapped_column(nullable=False, default=1, server_default="1")
    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": version}

    llm_provider: Mapped[LLMProvider] = relationship(back_populates="llm_models")
    llm_presets: Mapped[list[LLMPreset]] = relationship(
        back_populates="llm_model",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="LLMPreset.name",
    )

    @validates("key")
    def _normalize_key(self, _field: str, value: str | None) -> str | None:
        return v.normalize_key(value)

    @validates("model", "name")
    def _strip(self, _field: str, value: str | None) -> str | None:
        return v.strip_text(value)

    @property
    def effective_message_overhead_tokens(self) -> int:
        """The model's own overhead, or the provider's when the model leaves it NULL."""
        if self.message_overhead_tokens is not None:
            return self.message_overhead_tokens
        return self.llm_provider.message_overhead_tokens if self.llm_provider else 0

    def set_enabled(self, enabled: bool) -> bool:
        """Enable or disable this model in one conditional UPDATE (no read-modify-write to
        race with); True when the row changed."""
        return _set_enabled_where(_session_for(self), enabled, LLMModel.id == self.id) == 1

    @property
    def capabilities(self) -> dict[str, bool]:
        """The five supports_* columns as a map."""
        return {column: bool(getattr(self, column)) for column in CAPABILITY_COLUMNS}

    def _validate(self, errors: v.Errors) -> None:
        if self.llm_provider is None and self.llm_provider_id is None:
            v.add(errors, "llm_provider", "must exist")
        v.check_present(errors, "model", self.model)
        v.check_max_length(errors, "model", self.model, 300)
        v.check_present(errors, "name", self.name)
        v.check_max_length(errors, "name", self.name, 300)
        v.check_max_length(errors, "key", self.key, 200)
        provider_id = self.llm_provider.id if self.llm_provider else self.llm_provider_id
        if (
            self.model
            and provider_id is not None
            and _taken(self, LLMModel.llm_provider_id == provider_id, LLMModel.model == self.model)
        ):
            v.add(errors, "model", "has already been taken for this provider")
        if self.key and _taken(self, LLMModel.key == self.key):
            v.add(errors, "key", "has already been taken")
        for column in ("enabled", *CAPABILITY_COLUMNS):
            v.check_boolean(errors, column, getattr(self, column))
        v.check_non_negative_int(
            errors, "context_window_tokens", self.context_window_tokens, nullable=False
        )
        v.check_non_negative_int(
            errors, "message_overhead_tokens", self.message_overhead_tokens, nullable=True
        )

    def __repr__(self) -> str:
        return f"<LLMModel {self.id} {self.model!r}>"


def _set_enabled_where(session: Session, enabled: bool, *criteria: Any) -> int:
    """Set `enabled` on the models matching `criteria` in one UPDATE; returns how many changed.

    Only the rows that change, with their versions bumped by hand (a bulk UPDATE does not do
    it): an edit form opened before is refused only if its model really changed.
    """
    from webapp.models.history import record_bulk_enabled  # history imports this module

    result = session.execute(
        update(LLMModel)
        .where(*criteria, LLMModel.enabled != enabled)
        .values(enabled=enabled, updated_at=utcnow(), version=LLMModel.version + 1)
        .returning(LLMModel.id),
        execution_options={"synchronize_session": "fetch"},
    )
    changed = list(result.scalars())
    record_bulk_enabled(session, changed, enabled)
    return len(changed)


class LLMPreset(RecordMixin, db.Model):
    __tablename__ = "llm_presets"
    __table_args__ = (
        Index(
            "uq_llm_presets_llm_model_id_key",
            "llm_model_id",
            "key",
            unique=True,
            sqlite_where=text("key IS NOT NULL"),
            postgresql_where=text("key IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    llm_model_id: Mapped[int] = mapped_column(
        ForeignKey("llm_models.id", ondelete="CASCADE"), nullable=False, index=True
    )
    key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    name: Mapped[str] = mapped_column(String(300), nullable=False)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    llm_options_overrides: Mapped[dict[str, Any]] = mapped_column(
        JSONObject, nullable=False, default=dict, server_default="{}"
    )
    version: Mapped[int] = mapped_column(nullable=False, default=1, server_default="1")
    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": version}

    llm_model: Mapped[LLMModel] = relationship(back_populates="llm_presets")

    @validates("key")
    def _normalize_key(self, _field: str, value: str | None) -> str | None:
        return v.normalize_key(value)

    @validates("name")
    def _strip(self, _field: str, value: str | None) -> str | None:
        return v.strip_text(value)

    @hybrid_property
    def is_default(self) -> bool:
        return self.key == DEFAULT_PRESET_KEY

    def _validate(self, errors: v.Errors) -> None:
        if self.llm_model is None and self.llm_model_id is None:
            v.add(errors, "llm_model", "must exist")
        v.check_present(errors, "name", self.name)
        v.check_max_length(errors, "name", self.name, 300)
        v.check_max_length(errors, "key", self.key, 200)
        model_id = self.llm_model.id if self.llm_model else self.llm_model_id
        if (
            self.key
            and model_id is not None
            and _taken(self, LLMPreset.llm_model_id == model_id, LLMPreset.key == self.key)
        ):
            v.add(errors, "key", "has already been taken for this model")
        v.check_options(errors, "llm_options_overrides", self.llm_options_overrides)

    def __repr__(self) -> str:
        return f"<LLMPreset {self.id} {self.key or self.name!r}>"
