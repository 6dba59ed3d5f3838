"""A reply's states before it runs, and after its process died: one conditional statement
each, so two requests (two tabs, two workers) never both act on a reply.

A sent message's reply is "pending". `claim_own` moves it to "streaming" for its owner — in
the same statement checking the session and returning everything its call needs (the row,
the history, the version of its model's configuration) — and nothing else on a reply's
path queries the database before its outcome is saved. `refuse_busy` and `cancel_pending`
end a pending reply without running it; `settle_abandoned` ends a "streaming" reply that no
process writes any more.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Update,
    bindparam,
    exists,
    false,
    literal_column,
    update,
)

from webapp.extensions import db
from webapp.llm import results as codes
from webapp.models import ChatMessage, Conversation, User
from webapp.models.chat import CHAT_MESSAGES as MESSAGES
from webapp.models.types import utcnow
from webapp.services.conversations import EarlierMessage
from webapp.services.model_cache import Version, version_columns
from webapp.services.users import SessionUser

BUSY_TEXT = "ModelDesk is busy: too many replies are streaming right now. Try again in a moment."
SERVER_ERROR_TEXT = "the reply stopped because of an error on the server"

CONVERSATIONS = Conversation.__table__
USERS = User.__table__


def _owned_by() -> ColumnElement[bool]:
    """The message's conversation belongs to the session's user, and the session still
    counts (its version is the user's current one, the user is not disabled): inside a
    statement on messages, so the stream's path needs no query of its own for the user.
    The user is given at execution (`_owner_parameters`)."""
    return exists().where(
        CONVERSATIONS.c.id == MESSAGES.c.conversation_id,
        CONVERSATIONS.c.user_id == bindparam("owner_id"),
        USERS.c.id == CONVERSATIONS.c.user_id,
        USERS.c.session_version == bindparam("owner_session_version"),
        USERS.c.disabled == false(),
    )


def _owner_parameters(owner: SessionUser) -> dict[str, int]:
    return {"owner_id": owner.id, "owner_session_version": owner.session_version}


def _leave_pending(
    message_id: int, status: str, *, owner: SessionUser | None = None, **values: Any
) -> bool:
    """pending → `status`, atomically; False when the message had already left pending (or
    does not belong to `owner`, when given)."""
    conditions = [MESSAGES.c.id == message_id, MESSAGES.c.status == "pending"]
    if owner is not None:
        conditions.append(_owned_by())
    result = db.session.execute(
        update(MESSAGES).where(*conditions).values(status=status, updated_at=utcnow(), **values),
        _owner_parameters(owner) if owner is not None else {},
    )
    db.session.commit()
    return result.rowcount == 1


@dataclass(frozen=True)
class ClaimedReply:
    """A reply just claimed for its owner, with what its model call needs and the version of
    its model's configuration (see `model_cache`)."""

    id: int
    conversation_id: int
    llm_model_id: int | None
    llm_preset_id: int | None
    model_name: str | None
    preset_name: str | None
    details: dict[str, Any]
    model_version: Version
    content: str  # a continuation starts with the text it continues
    fit_history: bool  # the conversation's setting: leave out the oldest turns to fit
    earlier: list[EarlierMessage]  # the conversation's active messages before this one
    # Which row this is: SQLite may give a deleted message's id to a new one, and a reply
    # still running must never write into that.
    created_at: datetime


def claim_own(message_id: int, owner: SessionUser) -> ClaimedReply | None:
    """pending → streaming when the message is the session user's, in one statement that also
    returns everything the reply needs: its row, the conversation's fit setting, the version
    of its model's configuration and the conversation's messages before it. None when it is
    not pending, not theirs, or the session no longer counts.

    Core, not the ORM, and built once per process (`_claim_statement`): this runs once per
    reply, and the ORM's bulk-update machinery, or building the statement and its cache key
    each time, cost more CPU than the statement itself."""
    parameters = {"message_id": message_id, "now": utcnow(), **_owner_parameters(owner)}
    row = db.session.execute(_claim_statement(db.engine.dialect.name), parameters).first()
    db.session.commit()
    if row is None:
        return None
    (conversation_id, model_id, preset_id, model_name, preset_name, details, content) = row[:7]
    created_at, fit, earlier = row[7:10]
    return ClaimedReply(
        message_id,
        conversation_id,
        model_id,
        preset_id,
        model_name,
        preset_name,
        details or {},
        tuple(row[10:]),
        content,
        fit is None or bool(fit),
        _earlier_messages(earlier),
        created_at,
    )


@functools.cache
def _claim_statement(dialect: str) -> Update:
    return (
        update(MESSAGES)
        .where(
            MESSAGES.c.id == bindparam("message_id"),
            MESSAGES.c.status == "pending",
            _owned_by(),
        )
        .values(
            status="streaming",
            updated_at=bindparam("now", type_=MESSAGES.c.updated_at.type),
        )
        .returning(
            MESSAGES.c.conversation_id,
            MESSAGES.c.llm_model_id,
            MESSAGES.c.llm_preset_id,
            MESSAGES.c.model_name,
            MESSAGES.c.preset_name,
            MESSAGES.c.details,
            MESSAGES.c.content,
            MESSAGES.c.created_at,
            # Spelled out: a RETURNING list is rendered without table names (model_cache).
            literal_column(
                "(SELECT c.fit_history FROM conversations c"
                " WHERE c.id = chat_messages.conversation_id)"
            ),
            _earlier_messages_column(dialect),
            *version_columns("chat_messages.llm_model_id"),
        )
    )


def _earlier_messages_column(dialect: str) -> ColumnElement[Any]:
    """The conversation's active messages before the claimed one, as one JSON array of
    [id, role, content, status] (for a RETURNING list, so written out: see claim_own)."""
    aggregate, array = (
        ("json_agg", "json_build_array")
        if dialect == "postgresql"
        else ("json_group_array", "json_array")
    )
    return literal_column(
        f"(SELECT {aggregate}({array}(h.id, h.role, h.content, h.status))"
        " FROM chat_messages h WHERE h.conversation_id = chat_messages.conversation_id"
        " AND h.is_active AND h.id < chat_messages.id)"
    )


def _earlier_messages(value: str | list[list[Any]] | None) -> list[EarlierMessage]:
    """The JSON array of `_earlier_messages_column` (PostgreSQL hands it over decoded, SQLite
    as text; no messages is NULL or []), in the conversation's order."""
    rows = json.loads(value) if isinstance(value, str) else (value or [])
    return [EarlierMessage(role, content, status) for _, role, content, status in sorted(rows)]


def refuse_busy(
    message_id: int, reason: str = BUSY_TEXT, *, owner: SessionUser | None = None
) -> bool:
    """pending → error BUSY: the process, or the user, is at its stream limit."""
    return _leave_pending(
        message_id, "error", owner=owner, error_code=codes.BUSY, error_text=reason
    )


def cancel_pending(message_id: int) -> bool:
    """Stop pressed before the stream began: pending → stopped."""
    return _leave_pending(message_id, "stopped")


def abandoned_after(config: Mapping[str, Any]) -> timedelta:
    """How long a reply may go unwritten before it counts as abandoned (its process died): a
    live one is checkpointed every few seconds while text flows, and a silent provider is
    given up on after the read timeout."""
    return timedelta(seconds=float(config.get("LLM_REQUEST_TIMEOUT", 60)) + 30)


def settle_abandoned_statement(older_than: timedelta, *where: ColumnElement[bool]) -> Update:
    """Mark the replies matching `where` "incomplete" when they are still "streaming" but
    nothing has written to them for `older_than`."""
    return (
        update(ChatMessage)
        .where(
            *where,
            ChatMessage.status == "streaming",
            ChatMessage.updated_at < utcnow() - older_than,
        )
        .values(
            status="incomplete",
            error_code=codes.LLM_REQUEST_FAILED,
            error_text="the reply was interrupted: the server stopped writing it",
            updated_at=utcnow(),
        )
    )


def settle_abandoned(conversation_id: int, older_than: timedelta) -> int:
    """Settle the conversation's abandoned replies (see `settle_abandoned_statement`), so no
    page follows them forever. Returns how many were settled."""
    result = db.session.execute(
        settle_abandoned_statement(older_than, ChatMessage.conversation_id == conversation_id),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    return result.rowcount


def fail_claimed(message_id: int) -> None:
    """streaming → error: what went wrong between the claim and the start (the reply is
    never left "streaming" with no one writing it)."""
    db.session.rollback()
    db.session.execute(
        update(MESSAGES)
        .where(MESSAGES.c.id == message_id, MESSAGES.c.status == "streaming")
        .values(
            status="error",
            error_code=codes.INTERNAL_ERROR,
            error_text=SERVER_ERROR_TEXT,
            updated_at=utcnow(),
        )
    )
    db.session.commit()
