"""The life of one assistant reply: claim it, run it, record it, and say how it ended.

Sending a message stores a turn whose reply is "pending" (see conversations.add_turn). One
stream request then opens the reply (`open_reply`): it takes a stream slot (see
`reply_limits`; or refuses the reply as BUSY), claims the message for its owner (pending →
streaming, one conditional UPDATE that also returns what the call needs, so a reconnecting
browser never runs the model twice), reads the rest (history; the model's configuration
unless cached), and hands back a `ReplyStream` of events — text deltas, then one `ReplyEnd`
with the saved message. A `ReplyRecorder` (see `reply_recorder`) writes the outcome through
its own short sessions (complete, error, incomplete, stopped), so the reply is saved whatever
happens to the request.

The reply's run (`reply_runs`) reads the provider on a thread of the process; Stop and the
time limit cancel the provider call from another thread at once (`ChatStream.cancel`), even
mid-silence. A database that is away when the reply ends does not cost the reader the reply:
the end is shown from memory and saved when the database answers again (bounded retries).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app
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
from webapp.llm.results import Result
from webapp.llm.run import ChatStream, StreamEvent
from webapp.models import ChatMessage, Conversation, User
from webapp.models.chat import CHAT_MESSAGES as MESSAGES
from webapp.models.types import utcnow
from webapp.services import usage
from webapp.services.alternatives import reply_prompt
from webapp.services.chat import chat_events
from webapp.services.conversation_budget import fitted_history
from webapp.services.conversations import EarlierMessage
from webapp.services.model_cache import ModelCache, Version, version_columns
from webapp.services.reply_limits import ReplyLimits, StartGate, StreamSlots, UserStreams
from webapp.services.reply_recorder import ReplyRecorder
from webapp.services.users import SessionUser

log = logging.getLogger(__name__)

BUSY_TEXT = "ModelDesk is busy: too many replies are streaming right now. Try again in a moment."
USER_BUSY_TEXT = (
    "you have reached your limit of {replies} being written at once: wait for one to "
    "finish (or stop it) and send again"
)
ENDED_EARLY_TEXT = "the reply ended before it was complete"
# How long a reply waits for its turn to start (`StartGate`) before it is refused as busy.
START_WAIT_SECONDS = 30.0
SERVER_ERROR_TEXT = "the reply stopped because of an error on the server"
INTERRUPTED_TEXT = "the reply was interrupted"


def init_replies(app: Flask) -> None:
    """The per-process stream caps and the reply limits, from the configuration."""
    config = app.config
    app.extensions["stream_slots"] = StreamSlots(max(1, int(config["MAX_CONCURRENT_STREAMS"])))
    app.extensions["user_streams"] = UserStreams(max(1, int(config["MAX_STREAMS_PER_USER"])))
    # Each start holds a database connection: never more at once than the pool keeps.
    starts = min(int(config["REPLY_STARTS_AT_ONCE"]), int(config["DB_POOL_SIZE"]))
    app.extensions["start_gate"] = StartGate(max(1, starts))
    app.extensions["reply_limits"] = ReplyLimits(
        max_seconds=float(config["MAX_REPLY_SECONDS"]),
        max_chars=int(config["MAX_REPLY_CHARS"]),
        heartbeat_seconds=float(config["REPLY_HEARTBEAT_SECONDS"]),
    )
    app.extensions["model_cache"] = ModelCache()


# --- pending-state transitions -------------------------------------------------------------


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


# --- opening and running a reply -----------------------------------------------------------


@dataclass(frozen=True)
class ReplyDelta:
    """A piece of the reply's text, as it arrived."""

    text: str


@dataclass(frozen=True)
class ReplyHeartbeat:
    """Nothing new for a while (a page following the reply writes a beat, which is how a
    browser that left is noticed)."""


@dataclass(frozen=True)
class ReplyEnd:
    """The reply is over; `message` is what was saved (or will be, once the database is
    back)."""

    message: ChatMessage


ReplyEvent = ReplyDelta | ReplyHeartbeat | ReplyEnd


def open_reply(message_id: int, owner: SessionUser) -> ReplyStream | EndedReply | None:
    """Start the session user's pending reply `message_id`, or None when it is not pending
    (another request has it, or it is over), not theirs, or the session no longer counts.

    Past the process's stream cap, or the user's, the reply is refused at once: the stream
    holds just its `ReplyEnd` (error BUSY). Replies start in turns (`StartGate`); one that
    waited START_WAIT_SECONDS for its turn is refused the same way. Everything the model
    call needs is read now;
    the stream's events only talk to the provider and the recorder's own sessions.
    """
    extensions = current_app.extensions
    slots: StreamSlots = extensions["stream_slots"]
    user_streams: UserStreams = extensions["user_streams"]
    if not slots.try_acquire():
        return _refused(message_id, owner, BUSY_TEXT)
    if not user_streams.try_acquire(owner.id):
        slots.release()
        limit = user_streams.limit
        replies = f"{limit} reply" if limit == 1 else f"{limit} replies"
        return _refused(message_id, owner, USER_BUSY_TEXT.format(replies=replies))

    def release() -> None:
        user_streams.release(owner.id)
        slots.release()

    gate: StartGate = extensions["start_gate"]
    if not gate.acquire(START_WAIT_SECONDS):
        release()
        return _refused(message_id, owner, BUSY_TEXT)
    claimed = None
    try:
        claimed = claim_own(message_id, owner)
        if claimed is None:
            release()
            return None
        events, recorder = _start(claimed, owner.id)
    except BaseException:
        release()
        if claimed is not None:  # never leave a claimed reply "streaming" with no one writing it
            _fail_claimed(message_id)
        raise
    finally:
        gate.release()
    return ReplyStream(events, recorder, extensions["reply_limits"], on_close=release)


def _fail_claimed(message_id: int) -> None:
    db.session.rollback()
    db.session.execute(
        update(ChatMessage)
        .where(ChatMessage.id == message_id, ChatMessage.status == "streaming")
        .values(
            status="error",
            error_code=codes.INTERNAL_ERROR,
            error_text=SERVER_ERROR_TEXT,
            updated_at=utcnow(),
        ),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()


def _refused(message_id: int, owner: SessionUser, reason: str) -> EndedReply | None:
    if not refuse_busy(message_id, reason, owner=owner):
        return None
    message = db.session.get(ChatMessage, message_id, populate_existing=True)
    return EndedReply(message) if message is not None else None


def _start(message: ClaimedReply, user_id: int) -> tuple[ChatStream, ReplyRecorder]:
    """Read what the reply needs (model, provider, presets — cached while their version
    holds — and history) and start the call."""
    # A continuation's text stays in front of the new text.
    prompt = reply_prompt(message, message.earlier)
    recorder = ReplyRecorder(
        db.engine,
        message.id,
        model_name=message.model_name,
        preset_name=message.preset_name,
        call=usage.ChatCall(user_id=user_id),
        details=message.details,
        prefix=prompt.prefix,
        created_at=message.created_at,
    )
    cache: ModelCache = current_app.extensions["model_cache"]
    llm_model = (
        cache.get(db.engine, message.llm_model_id, message.model_version)
        if message.llm_model_id is not None
        else None
    )
    if llm_model is None:
        failure = Result.failure(
            codes.MODEL_NOT_FOUND, "the model chosen for this reply was deleted"
        )
        return ChatStream.failed(failure), recorder
    if message.preset_name is not None and message.llm_preset_id is None:
        failure = Result.failure(
            codes.PRESET_NOT_FOUND, "the preset chosen for this reply no longer exists"
        )
        return ChatStream.failed(failure), recorder
    preset = next((p for p in llm_model.llm_presets if p.id == message.llm_preset_id), None)
    system = (message.details or {}).get("system_prompt")
    question = prompt.user_text
    # Fitted as the meter showed it: the oldest turns left out unless the conversation says no.
    turns = fitted_history(
        llm_model,
        history=prompt.history,
        user_text=question,
        system=system,
        preset=preset,
        fit=message.fit_history,
    ).turns
    events = chat_events(
        llm_model, user_text=question or "", history=turns, system=system, preset=preset
    )
    recorder.model_name = llm_model.name
    recorder.preset_name = preset.name if preset else message.preset_name
    recorder.call = usage.ChatCall(
        user_id=user_id,
        llm_model_id=llm_model.id,
        model_key=llm_model.key,
        preset_key=preset.key if preset else None,
        stream=llm_model.supports_streaming,
        model_hint=llm_model.model,
        message_overhead_tokens=llm_model.effective_message_overhead_tokens,
        prompt=(
            *([{"role": "system", "content": system}] if system else []),
            *turns,
            {"role": "user", "content": question or ""},
        ),
    )
    # Everything is read; give the connection back while the reply streams.
    db.session.close()
    return events, recorder


class ReplyStream:
    """The events of one reply: `ReplyDelta`s, then one `ReplyEnd`.

    One thread iterates it (the reply's run, see `reply_runs`), reading the provider as it
    answers. Other threads may end it early: `request_stop()` (Stop pressed) and
    `check_deadline()` (the run's watchdog, for the time limit) cancel the provider call at
    once, even while the provider is silent, and the reply ends as stopped or cut with the
    text that arrived. Call `close()` when done, whether or not it was iterated; a reply
    closed before its end is recorded as stopped.
    """

    def __init__(
        self,
        events: ChatStream,
        recorder: ReplyRecorder,
        limits: ReplyLimits,
        *,
        on_close: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._events = events
        self._recorder = recorder
        self._limits = limits
        self._on_close = on_close
        self._clock = clock
        self._deadline = clock() + limits.max_seconds
        self._run = self._generate()
        self._closed = False
        # How the reply ends when another thread cut it short (Stop, the time limit).
        self._ending: Callable[[], ChatMessage] | None = None

    def __iter__(self) -> Iterator[ReplyEvent]:
        return self._run

    @property
    def saved(self) -> ChatMessage | None:
        """The outcome, once recorded."""
        return self._recorder.saved

    @property
    def prefix(self) -> str:
        """The text the reply starts with before any new text (a continuation's)."""
        return self._recorder.prefix

    def request_stop(self) -> None:
        """Stop pressed (from any thread): the provider call is cancelled at once, and the
        reply ends as stopped with the text that arrived."""
        self._end_early(self._recorder.stop)

    def check_deadline(self) -> None:
        """Past the reply's time limit (checked from any thread), cut it there."""
        if self._clock() < self._deadline:
            return
        reason = f"the reply reached its {self._limits.max_seconds:g}-second limit"
        self._end_early(lambda: self._recorder.cut(reason))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._run.close()
            self._events.close()
            if self._recorder.saved is None:  # closed before its body ever ran
                self._recorder.stop()
        finally:
            self._on_close()

    def _end_early(self, ending: Callable[[], ChatMessage]) -> None:
        if self._ending is None:
            self._ending = ending
        self._events.cancel()

    def _generate(self) -> Iterator[ReplyEvent]:
        recorder, limits = self._recorder, self._limits
        try:
            for item in self._events:
                if self._ending is not None:
                    break
                if item.type != "delta":
                    yield ReplyEnd(recorder.finish(item))
                    return
                text = item.content[: max(limits.max_chars - recorder.length, 0)]
                if text:
                    recorder.add(text)
                    yield ReplyDelta(text)
                if len(text) < len(item.content):
                    limit = f"{limits.max_chars:,}"
                    yield ReplyEnd(self._cut(f"the reply reached its {limit}-character limit"))
                    return
            if self._ending is not None:
                yield ReplyEnd(self._ending())
                return
            ended = Result.failure(codes.LLM_REQUEST_FAILED, ENDED_EARLY_TEXT)
            yield ReplyEnd(recorder.finish(StreamEvent("error", result=ended)))
        except GeneratorExit:
            self._events.cancel()
            recorder.stop()
            raise
        except Exception:
            self._events.cancel()
            if self._ending is not None:  # the cancelled call's own error, not a fault
                yield ReplyEnd(self._ending())
                return
            log.exception("chat reply %s failed while streaming", recorder.message_id)
            yield ReplyEnd(recorder.fail(SERVER_ERROR_TEXT))
        finally:
            if recorder.saved is None:  # ended some other way (the worker shutting down, …)
                self._events.cancel()
                recorder.fail(INTERRUPTED_TEXT)
            self._events.close()  # the provider's connection goes back to its pool

    def _cut(self, reason: str) -> ChatMessage:
        """A limit was reached: stop the provider call and keep what arrived."""
        self._events.cancel()
        return self._recorder.cut(reason)


class EndedReply:
    """A reply that ended before it could stream (refused as busy): just its end."""

    def __init__(self, message: ChatMessage) -> None:
        self._message = message

    def __iter__(self) -> Iterator[ReplyEvent]:
        yield ReplyEnd(self._message)

    def close(self) -> None:
        """Nothing to release: no slot was taken."""
