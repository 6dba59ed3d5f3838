"""Conversations and their messages: the chat transcript, kept across reloads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Float, ForeignKey, String, Text, true
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from webapp.extensions import db
from webapp.models import validation as v
from webapp.models.llm import LLMModel, LLMPreset, RecordMixin
from webapp.models.types import JSONObject, UTCDateTime

# pending: stored, waiting for its stream; streaming: claimed by one stream request.
MESSAGE_STATUSES = ("pending", "streaming", "complete", "stopped", "incomplete", "error")
DEFAULT_TITLE = "New conversation"
# Full-text search lives beside these tables (migration 0012): FTS5 tables and triggers on
# SQLite, GIN indexes on PostgreSQL. The models do not describe them.
SEARCH_INDEX_PREFIX = "fts_"


def described_by_models(name: str | None, _type: str, _parents: dict[str, Any]) -> bool:
    """Alembic's `include_name`: every database object but the search's, so autogenerate
    and the schema test compare only what the models describe."""
    return not (name or "").startswith(SEARCH_INDEX_PREFIX)


class Conversation(RecordMixin, db.Model):
    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    title: Mapped[str] = mapped_column(String(200), nullable=False, default=DEFAULT_TITLE)
    llm_model_id: Mapped[int | None] = mapped_column(
        ForeignKey("llm_models.id", ondelete="SET NULL"), nullable=True
    )
    llm_preset_id: Mapped[int | None] = mapped_column(
        ForeignKey("llm_presets.id", ondelete="SET NULL"), nullable=True
    )
    system_prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    # When the history no longer fits the model's window, leave the oldest turns out of the
    # request (True) or refuse the message as PROMPT_TOO_LONG (False).
    fit_history: Mapped[bool] = mapped_column(nullable=False, default=True, server_default=true())

    llm_model: Mapped[LLMModel | None] = relationship()
    llm_preset: Mapped[LLMPreset | None] = relationship()
    messages: Mapped[list[ChatMessage]] = relationship(
        back_populates="conversation",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ChatMessage.id",
    )

    @validates("title")
    def _strip_title(self, _field: str, value: str | None) -> str | None:
        return v.strip_text(value)

    def _validate(self, errors: v.Errors) -> None:
        v.check_present(errors, "title", self.title)
        v.check_max_length(errors, "title", self.title, 200)
        v.check_boolean(errors, "fit_history", self.fit_history)


class ChatMessage(RecordMixin, db.Model):
    __tablename__ = "chat_messages"
    __table_args__ = (
        CheckConstraint("role IN ('user', 'assistant')", name="role_known"),
        CheckConstraint(
            "status IN ('pending', 'streaming', 'complete', 'stopped', 'incomplete', 'error')",
            name="status_known",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False, index=True
    )
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False, default="", server_default="")
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default="complete", server_default="complete"
    )
    # What an assistant message is answered with. The names are kept as text too: the
    # model or preset may be renamed or deleted later (the id then becomes NULL), and the
    # transcript should still say what answered.
    llm_model_id: Mapped[int | None] = mapped_column(
        ForeignKey("llm_models.id", ondelete="SET NULL"), nullable=True, index=True
    )
    llm_preset_id: Mapped[int | None] = mapped_column(
        ForeignKey("llm_presets.id", ondelete="SET NULL"), nullable=True
    )
    model_name: Mapped[str | None] = mapped_column(String(300), nullable=True)
    preset_name: Mapped[str | None] = mapped_column(String(300), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(
        JSONObject, nullable=False, default=dict, server_default="{}"
    )
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSONObject, nullable=True)
    # An assistant message answers one user message; regenerating or continuing a reply adds
    # another answer to the same one (an alternative). One answer per user message is active:
    # the one the page shows and the next turn's history uses. A user message's are NULL/true.
    reply_to_id: Mapped[int | None] = mapped_column(
        ForeignKey("chat_messages.id", ondelete="CASCADE"), nullable=True, index=True
    )
    is_active: Mapped[bool] = mapped_column(nullable=False, default=True, server_default=true())
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    total_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Stop pressed in a page served by another process than the one writing the reply.
    stop_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")
    llm_model: Mapped[LLMModel | None] = relationship()
    llm_preset: Mapped[LLMPreset | None] = relationship()

    @property
    def model_deleted(self) -> bool:
        """An assistant reply whose model no longer exists."""
        return self.role == "assistant" and self.llm_model_id is None and bool(self.model_name)

    @property
    def tokens_per_second(self) -> float | None:
        """Completion tokens over the streaming time after the first token."""
        completion = (self.usage or {}).get("completion_tokens")
        if not completion or self.total_ms is None:
            return None
        seconds = (self.total_ms - (self.ttft_ms or 0)) / 1000
        return round(completion / seconds, 1) if seconds > 0 else None

    def _validate(self, errors: v.Errors) -> None:
        if self.role not in ("user", "assistant"):
            v.add(errors, "role", "must be user or assistant")
        if self.status not in MESSAGE_STATUSES:
            v.add(errors, "status", "is not a known status")
        if not isinstance(self.content, str):
            v.add(errors, "content", "must be text")


# The table itself, for Core statements on a reply's path (claim, checkpoints, outcome): a
# statement that names ORM attributes runs through the ORM's machinery, which costs more CPU
# than the statement.
CHAT_MESSAGES = ChatMessage.__table__
