"""Encryption-key rotation for stored provider API keys."""

from __future__ import annotations

from sqlalchemy import column, select, table, update
from sqlalchemy.orm import Session
from sqlalchemy_utils.types.encrypted.encrypted_type import InvalidCiphertextError

from webapp.models.types import encryption_engine

# The table without its column types: rows come and go as stored ciphertext, untouched by
# the ORM's encrypted type (which would decrypt/encrypt with the configured key).
_RAW_PROVIDERS = table("llm_providers", column("id"), column("name"), column("api_key"))


class KeyRotationError(RuntimeError):
    """Some stored key does not decrypt with the old key; nothing was changed."""


def rotate_encryption_key(session: Session, old_key: str, new_key: str) -> int:
    """Re-encrypt every stored API key from `old_key` to `new_key` in one transaction.

    Returns
    the number of keys re-encrypted. Raises KeyRotationError (and rolls back) when any
    stored key does not decrypt with `old_key`.
    """
    if old_key == new_key:
        raise KeyRotationError("the old and new keys are the same")
    old_engine, new_engine = encryption_engine(old_key), encryption_engine(new_key)
    raw = _RAW_PROVIDERS.c
    rows = session.execute(
        select(raw.id, raw.name, raw.api_key).where(raw.api_key.is_not(None))
    ).all()
    rotated: list[tuple[int, str]] = []
    unreadable: list[str] = []
    for provider_id, name, ciphertext in rows:
        try:
            plaintext = old_engine.decrypt(ciphertext)
        except (InvalidCiphertextError, ValueError):
            unreadable.append(name)
            continue
        rotated.append((provider_id, new_engine.encrypt(plaintext)))
    if unreadable:
        session.rollback()
        raise KeyRotationError(
            "these providers' keys do not decrypt with the old key: " + ", ".join(unreadable)
        )
    for provider_id, ciphertext in rotated:
        session.execute(
            update(_RAW_PROVIDERS).where(raw.id == provider_id).values(api_key=ciphertext)
        )
    session.commit()
    return len(rotated)
