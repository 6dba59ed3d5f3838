"""Column types shared by the models."""

from __future__ import annotations

import binascii
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from sqlalchemy import JSON, DateTime, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine
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


class UnreadableHeaderValue:
    """A stored header value that the current encryption key cannot decrypt.

    It keeps the stored ciphertext so that saving the provider again (say, renaming it, or
    changing another header) leaves that value exactly as stored — as an untouched API key
    column stays — for a later `flask keys rotate` or a restored key to recover. It is
    never decrypted, never sent, and shows as "unreadable — re-enter it".
    """

    __slots__ = ("ciphertext",)

    def __init__(self, ciphertext: str) -> None:
        self.ciphertext = ciphertext

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnreadableHeaderValue) and other.ciphertext == self.ciphertext

    def __hash__(self) -> int:
        return hash(self.ciphertext)

    def __repr__(self) -> str:
        return "<unreadable secret>"


def is_unreadable(value: object) -> bool:
    """True for a stored secret (API key or header value) the current key cannot decrypt."""
    return value is UNREADABLE or isinstance(value, UnreadableHeaderValue)


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


# What decrypting a value stored with another key (or not ciphertext at all) raises.
UNDECRYPTABLE = (InvalidCiphertextError, binascii.Error, ValueError, UnicodeDecodeError, TypeError)


def decrypt_or_unreadable(engine: AesGcmEngine, ciphertext: Any) -> str | UnreadableHeaderValue:
    """The plaintext of a stored header value, or an `UnreadableHeaderValue` keeping it."""
    try:
        plaintext = engine.decrypt(ciphertext)
    except UNDECRYPTABLE:
        return UnreadableHeaderValue(str(ciphertext))
    return plaintext if isinstance(plaintext, str) else UnreadableHeaderValue(str(ciphertext))


class EncryptedHeaderValues(TypeDecorator[dict[str, Any]]):
    """A JSON object of header name → value whose VALUES are encrypted at rest.

    Stored as `{"X-Title": "<AES-GCM ciphertext>", …}` in the same JSON / JSONB column:
    names stay readable (they are protocol names, not secrets), each value is encrypted
    like `api_key` (MODELDESK_ENCRYPTION_KEY, a random nonce per value). Loaded, it is a
    plain dict of str → str; a value the key cannot decrypt loads as an
    `UnreadableHeaderValue` and is written back as the ciphertext it was, never as text.
    Anything but a dict of strings is refused here; the model's validation says why first.
    """

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())

    def process_bind_param(self, value: Any, dialect: Any) -> dict[str, str] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ValueError("headers must be a JSON object")
        engine = encryption_engine(current_encryption_key())
        stored: dict[str, str] = {}
        for name, header_value in value.items():
            if isinstance(header_value, UnreadableHeaderValue):
                stored[name] = header_value.ciphertext
            elif isinstance(header_value, str):
                stored[name] = engine.encrypt(header_value)
            else:
                raise ValueError(f"header {name!r} must have a string value")
        return stored

    def process_result_value(self, value: Any, dialect: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            return {}
        engine = encryption_engine(current_encryption_key())
        return {name: decrypt_or_unreadable(engine, stored) for name, stored in value.items()}
