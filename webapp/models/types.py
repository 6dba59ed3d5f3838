"""Column types shared by the models."""

from __future__ import annotations

import binascii
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from sqlalchemy import JSON, DateTime, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator
from sqlalchemy_utils.types.encrypted.encrypted_type import (
    AesGcmEngine,
    InvalidCiphertextError,
    StringEncryptedType,
)

# JSON objects are JSONB on PostgreSQL (indexable, compact) and JSON text on SQLite.
JSONObject = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every database (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class UnreadableSecret:
    """Stands in for a stored secret that the current encryption key cannot decrypt."""

    _instance: UnreadableSecret | None = None

    def __new__(cls) -> UnreadableSecret:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unreadable secret>"


UNREADABLE = UnreadableSecret()


def current_encryption_key() -> str:
    return current_app.config["MODELDESK_ENCRYPTION_KEY"]


def encryption_engine(key: str) -> AesGcmEngine:
    """The AES-GCM engine that `EncryptedString` uses, for a given key (key rotation)."""
    engine = AesGcmEngine()
    engine._update_key(key)
    return engine


class EncryptedString(StringEncryptedType):
    """AES-GCM encrypted text keyed by MODELDESK_ENCRYPTION_KEY.

    A value that does not decrypt (the key changed) loads as `UNREADABLE` instead of
    raising, so a page that lists providers keeps working and can say "re-enter the key".
    """

    impl = Text
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(Text(), key=current_encryption_key, engine=AesGcmEngine)

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is UNREADABLE:
            raise ValueError("an unreadable secret cannot be written back; set a new value")
        return super().process_bind_param(value, dialect)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        try:
            return super().process_result_value(value, dialect)
        except (InvalidCiphertextError, binascii.Error, ValueError, UnicodeDecodeError):
            return UNREADABLE
