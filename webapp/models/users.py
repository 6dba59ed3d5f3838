"""People who sign in: admins manage configuration, members only chat."""

from __future__ import annotations

import re
import secrets
from datetime import datetime

from flask import current_app, has_app_context
from flask_login import UserMixin
from sqlalchemy import CheckConstraint, String, false
from sqlalchemy.orm import Mapped, mapped_column, validates

from webapp.extensions import db
from webapp.models import validation as v
from webapp.models.llm import RecordMixin, _taken
from webapp.models.types import UTCDateTime
from webapp.passwords import hash_password, password_matches

ROLES = ("admin", "member")
DEFAULT_PASSWORD_HASH_METHOD = "scrypt"  # werkzeug's default
MIN_PASSWORD_LENGTH = 8
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class User(UserMixin, RecordMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('admin', 'member')", name="role_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(256), nullable=False)
    role: Mapped[str] = mapped_column(
        String(16), nullable=False, default="member", server_default="member"
    )
    # Part of the session's user id: bumping it (sign-out, a new password) refuses every
    # session cookie issued before, wherever it is replayed from.
    session_version: Mapped[int] = mapped_column(nullable=False, default=0, server_default="0")
    # A disabled user cannot sign in; disabling also bumps session_version.
    disabled: Mapped[bool] = mapped_column(nullable=False, default=False, server_default=false())
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    @validates("email")
    def _normalize_email(self, _field: str, value: str | None) -> str | None:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_active(self) -> bool:
        """Flask-Login: a disabled user is refused at sign-in and by the session loader."""
        return not self.disabled

    def get_id(self) -> str:
        """What Flask-Login keeps in the session: "<id>:<session_version>"."""
        return f"{self.id}:{self.session_version or 0}"

    def set_password(self, password: str) -> None:
        """Hash and keep a new password; sessions signed in with the old one end."""
        self.password_hash = hash_password(password, password_hash_method())
        self.session_version = (self.session_version or 0) + 1

    def check_password(self, password: str) -> bool:
        return password_matches(self.password_hash, password)

    def _validate(self, errors: v.Errors) -> None:
        v.check_present(errors, "email", self.email)
        if self.email and not _EMAIL.match(self.email):
            v.add(errors, "email", "is not an email address")
        v.check_max_length(errors, "email", self.email, 320)
        if self.email and _taken(self, User.email == self.email):
            v.add(errors, "email", "has already been taken")
        if self.role not in ROLES:
            v.add(errors, "role", f"must be one of {', '.join(ROLES)}")
        v.check_present(errors, "password", self.password_hash)

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email!r} {self.role}>"


def password_hash_method() -> str:
    if has_app_context():
        return current_app.config.get("PASSWORD_HASH_METHOD") or DEFAULT_PASSWORD_HASH_METHOD
    return DEFAULT_PASSWORD_HASH_METHOD


# A hash of nothing anyone types, per method: checked when no account has the email, so an
# unknown email costs the same hash check as a known one (no timing answer to "who exists").
_DUMMY_HASHES: dict[str, str] = {}


def check_no_password(password: str) -> None:
    """Spend the same work as one password check of the configured method, on no account."""
    method = password_hash_method()
    if method not in _DUMMY_HASHES:
        _DUMMY_HASHES[method] = hash_password(secrets.token_urlsafe(16), method)
    password_matches(_DUMMY_HASHES[method], password)


def password_errors(password: str, confirmation: str | None = None) -> v.Errors:
    """Messages per field (password, password_confirmation); empty when acceptable.

    A mismatch belongs to the confirmation field: that is the one to type again.
    """
    errors: v.Errors = {}
    if len(password) < MIN_PASSWORD_LENGTH:
        v.add(errors, "password", f"must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        v.add(errors, "password", "is too long")
    if confirmation is not None and password != confirmation:
        v.add(errors, "password_confirmation", "does not match the password")
    return errors
