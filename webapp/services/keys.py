"""Encryption-key rotation for stored provider secrets: API keys and header values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import column, select, table, update
from sqlalchemy.orm import Session
from sqlalchemy_utils.types.encrypted.encrypted_type import AesGcmEngine

from webapp.models.types import UNDECRYPTABLE, JSONObject, encryption_engine

# The table without the encrypted types: rows come and go as stored ciphertext, untouched by
# the ORM's types (which would decrypt/encrypt with the configured key). `headers` is read
# as the stored JSON object of name → ciphertext.
_RAW_PROVIDERS = table(
    "llm_providers",
    column("id"),
    column("name"),
    column("api_key"),
    column("headers", JSONObject),
)


class KeyRotationError(RuntimeError):
    """Some stored secret does not decrypt with the old key; nothing was changed."""


@dataclass(frozen=True)
class Rotated:
    """How many stored secrets were re-encrypted."""

    api_keys: int = 0
    header_values: int = 0


def _reencrypt(old: AesGcmEngine, new: AesGcmEngine, ciphertext: Any) -> str | None:
    """`ciphertext` re-encrypted from `old` to `new`, or None when `old` cannot decrypt it."""
    try:
        plaintext = old.decrypt(ciphertext)
    except UNDECRYPTABLE:
        return None
    return new.encrypt(plaintext) if isinstance(plaintext, str) else None


def rotate_encryption_key(session: Session, old_key: str, new_key: str) -> Rotated:
    """Re-encrypt every stored API key and header value from `old_key` to `new_key`, in one
    transaction.

    Raises KeyRotationError (and rolls back, changing nothing) when any stored secret does
    not decrypt with `old_key`.
    """
    if old_key == new_key:
        raise KeyRotationError("the old and new keys are the same")
    old_engine, new_engine = encryption_engine(old_key), encryption_engine(new_key)
    raw = _RAW_PROVIDERS.c
    rows = session.execute(select(raw.id, raw.name, raw.api_key, raw.headers)).all()
    updates: list[tuple[int, dict[str, Any]]] = []
    api_keys = header_values = 0
    unreadable: list[str] = []
    for provider_id, name, api_key, headers in rows:
        values: dict[str, Any] = {}
        if api_key is not None:
            values["api_key"] = _reencrypt(old_engine, new_engine, api_key)
            if values["api_key"] is None:
                unreadable.append(f"{name} (API key)")
            api_keys += 1
        if headers:
            rotated = {
                header: _reencrypt(old_engine, new_engine, stored)
                for header, stored in dict(headers).items()
            }
            unreadable += [f"{name} ({h} header)" for h, value in rotated.items() if value is None]
            values["headers"] = rotated
            header_values += len(rotated)
        if values:
            updates.append((provider_id, values))
    if unreadable:
        session.rollback()
        raise KeyRotationError(
            "these secrets do not decrypt with the old key: " + ", ".join(unreadable)
        )
    for provider_id, values in updates:
        session.execute(update(_RAW_PROVIDERS).where(raw.id == provider_id).values(**values))
    session.commit()
    return Rotated(api_keys=api_keys, header_values=header_values)
