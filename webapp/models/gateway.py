"""App keys: how other apps authenticate to the gateway (`/v1`), with a scope and limits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column, validates

from webapp.extensions import db
from webapp.models import validation as v
from webapp.models.llm import RecordMixin, _taken
from webapp.models.types import UTCDateTime

MAX_NAME_LENGTH = 100


class AppKey(RecordMixin, db.Model):
    """One app's key. Only a hash of the secret is kept; `prefix` lets people tell keys apart."""

    __tablename__ = "app_keys"
    __table_args__ = (
        CheckConstraint("rpm IS NULL OR rpm > 0", name="rpm_positive"),
        CheckConstraint("tpm IS NULL OR tpm > 0", name="tpm_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH), unique=True, nullable=False)
    prefix: Mapped[str] = mapped_column(String(32), nullable=False)
    # sha256 of the whole secret: the secret is random and long, so a slow hash buys nothing.
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    # Model keys the app may use (a bare key also grants its `key@preset` ids); NULL = every model.
    model_keys: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    rpm: Mapped[int | None] = mapped_column(nullable=True)
    tpm: Mapped[int | None] = mapped_column(nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(320), nullable=True)

    @validates("name")
    def _strip_name(self, _field: str, value: str | None) -> str | None:
        return value.strip() if isinstance(value, str) else value

    def _validate(self, errors: v.Errors) -> None:
        v.check_present(errors, "name", self.name)
        v.check_max_length(errors, "name", self.name, MAX_NAME_LENGTH)
        if self.name and _taken(self, AppKey.name == self.name):
            v.add(errors, "name", "has already been taken")
        for field in ("rpm", "tpm"):
            value = getattr(self, field)
            if value is not None and not 0 < value <= v.MAX_INT:
                v.add(errors, field, f"must be between 1 and {v.MAX_INT}")

    def __repr__(self) -> str:
        return f"<AppKey {self.id} {self.name!r} {self.prefix}…>"
