"""Usage records: one row per request served (a gateway call or a chat reply)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.models.types import UTCDateTime, utcnow

SOURCES = ("gateway", "chat")


class UsageRecord(db.Model):
    """Written in batches by `webapp.services.usage` (never per streamed chunk)."""

    __tablename__ = "usage_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, nullable=False, index=True
    )
    source: Mapped[str] = mapped_column(String(16), nullable=False)  # gateway, chat
    # The app key that made a gateway call. No foreign key: keys are revoked, never deleted,
    # and a usage log must never have a batch refused over the key it names.
    app_key_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    # Who chatted (a chat reply); kept as NULL when the user is deleted.
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True, index=True
    )
    llm_model_id: Mapped[int | None] = mapped_column(
        ForeignKey("llm_models.id", ondelete="SET NULL"), nullable=True, index=True
    )
    # What the caller asked for, as it asked: it stays meaningful when the model is gone.
    model_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    preset_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    status: Mapped[int] = mapped_column(Integer, nullable=False)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The token counts were estimated here: the upstream reported none.
    estimated: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    total_ms: Mapped[float] = mapped_column(Float, nullable=False)
    stream: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    def __repr__(self) -> str:
        return f"<UsageRecord {self.id} {self.source} {self.model_key!r} {self.status}>"
