"""App keys for the gateway: create (the secret shown once), list, revoke, authenticate."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from webapp.extensions import db
from webapp.models import LLMModel
from webapp.models.gateway import AppKey
from webapp.models.types import utcnow
from webapp.models.validation import Errors

SECRET_PREFIX = "mdk-"
# What the page and the CLI show of a key: enough to tell keys apart, far too little to guess.
SHOWN_PREFIX_LENGTH = len(SECRET_PREFIX) + 8
# A century: longer is "never" in all but name, and far beyond it timedelta overflows.
MAX_EXPIRES_DAYS = 36500


@dataclass(frozen=True)
class AppKeyGrant:
    """What the gateway needs to serve one request for a key (no row, no session)."""

    id: int
    name: str
    model_keys: frozenset[str] | None
    rpm: int | None
    tpm: int | None
    expires_at: datetime | None

    def allows(self, model_key: str) -> bool:
        """Whether the key's scope covers `model_key` (a `key@preset` id is its model's)."""
        return self.model_keys is None or model_key.partition("@")[0] in self.model_keys

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class NewKey:
    """A key just created, or why it could not be: `secret` exists only here, once."""

    key: AppKey | None
    secret: str | None
    errors: dict[str, list[str]]


def create_key(
    name: str,
    *,
    model_keys: list[str] | None = None,
    expires_days: float | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    created_by: str | None = None,
) -> NewKey:
    secret = new_secret()
    expiry_errors = _expiry_errors(expires_days)
    if expiry_errors:
        expires_days = None
    key = AppKey(
        name=name,
        prefix=secret[:SHOWN_PREFIX_LENGTH],
        secret_hash=hash_secret(secret),
        model_keys=sorted({k.strip().lower() for k in model_keys}) if model_keys else None,
        rpm=rpm,
        tpm=tpm,
        expires_at=utcnow() + timedelta(days=expires_days) if expires_days else None,
        created_by=created_by,
    )
    errors = key.validation_errors() | expiry_errors
    if errors:
        return NewKey(None, None, errors)
    db.session.add(key)
    try:
        db.session.commit()
    except IntegrityError:
        # Another admin took the name between the check and the INSERT.
        db.session.rollback()
        return NewKey(None, None, {"name": ["has already been taken"]})
    return NewKey(key, secret, {})


def _expiry_errors(expires_days: float | None) -> Errors:
    if expires_days is None or 0 < expires_days <= MAX_EXPIRES_DAYS:
        return {}
    return {"expires_days": [f"must be between 1 and {MAX_EXPIRES_DAYS} days"]}


def scopable_model_keys() -> list[str]:
    """The keys a key's scope may name: every model that has one, enabled or not (a scope
    outlives a model being switched off for a while)."""
    query = select(LLMModel.key).where(LLMModel.key.is_not(None)).order_by(LLMModel.key)
    return list(db.session.scalars(query))


def scope_errors(model_keys: list[str]) -> Errors:
    """Why a scope cannot be granted: the keys no model has, and the keys there are."""
    known = scopable_model_keys()
    unknown = sorted({k.strip().lower() for k in model_keys} - set(known))
    if not unknown:
        return {}
    there = ", ".join(known) if known else "none yet: give a model a key first"
    message = f"include unknown keys: {', '.join(unknown)} (known keys: {there})"
    return {"model_keys": [message]}


def key_status(key: AppKey, now: datetime) -> str:
    """`revoked`, `expired` or `active`: what the gateway will do with the key now."""
    if key.revoked_at is not None:
        return "revoked"
    return "expired" if grant_of(key).expired(now) else "active"


def list_keys() -> list[AppKey]:
    return list(db.session.scalars(select(AppKey).order_by(AppKey.name)))


class ListedKey(NamedTuple):
    key: AppKey
    status: str


def list_keys_with_status() -> list[ListedKey]:
    """Every key by name, with its status as of now (one clock for the whole list)."""
    now = utcnow()
    return [ListedKey(key, key_status(key, now)) for key in list_keys()]


def find_key(name: str) -> AppKey | None:
    return db.session.scalar(select(AppKey).where(AppKey.name == name.strip()))


def revoke_key(key: AppKey) -> AppKey:
    """Stop the key working from now on (kept for the usage history)."""
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        db.session.commit()
    return key


def grant_of(key: AppKey) -> AppKeyGrant:
    return AppKeyGrant(
        id=key.id,
        name=key.name,
        model_keys=frozenset(key.model_keys) if key.model_keys is not None else None,
        rpm=key.rpm,
        tpm=key.tpm,
        expires_at=key.expires_at,
    )


def authenticate(secret: str) -> AppKeyGrant | None:
    """The grant of the live key whose secret this is; None when unknown, revoked or expired."""
    key = db.session.scalar(select(AppKey).where(AppKey.secret_hash == hash_secret(secret)))
    if key is None or key.revoked_at is not None:
        return None
    grant = grant_of(key)
    return None if grant.expired(utcnow()) else grant
