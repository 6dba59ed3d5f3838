"""The life of one assistant reply: claim it, run it, record it, and say how it ended.

Sending a message stores a turn whose reply is "pending" (see conversations.add_turn). One
stream request then opens the reply (`open_reply`): it takes a stream slot (see
`reply_limits`; or refuses the reply as BUSY), claims the message (pending → streaming, one
conditional UPDATE, so a reconnecting browser never runs the model twice), reads everything
the model call needs, and hands back a `ReplyStream` of events — text deltas, then one
`ReplyEnd` with the saved message. A `ReplyRecorder` (see `reply_recorder`) writes the
outcome through its own short sessions (complete, error, incomplete, stopped), so the reply
is saved whatever happens to the request.

The provider is read on a thread of its own (`webapp.llm.pump.Pump`): the response thread
waits for events with a timeout, so while the provider is silent it sends a heartbeat (which
is how a browser that left is noticed) and enforces the reply's time limit; a stop cancels the
provider call at once (`ChatStream.cancel`), even mid-silence. A database that is away when
the reply ends does not cost the reader the reply: the end is shown from memory and saved
when the database answers again (bounded retries).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import update
from sqlalchemy.orm import joinedload, selectinload

from webapp.extensions import db
from webapp.llm import results as codes
from webapp.llm.pump import Pump
from webapp.llm.results import Result
from webapp.llm.run import ChatStream, StreamEvent
from webapp.models import ChatMessage, LLMModel
from webapp.models.types import utcnow
from webapp.services import usage
from webapp.services.chat import chat_events
from webapp.services.conversations import reply_turns
from webapp.services.reply_limits import ReplyLimits, StreamSlots, UserStreams
from webapp.services.reply_recorder import ReplyRecorder

log = logging.getLogger(__name__)

BUSY_TEXT = "ModelDesk is busy: too many replies are streaming right now. Try again in a moment."
USER_BUSY_TEXT = (
    "you have reached your limit of {replies} being written at once: wait for one to "
    "finish (or stop it) and send again"
)
ENDED_EARLY_TEXT = "the reply ended before it was complete"
SERVER_ERROR_TEXT = "the reply stopped because of an error on the server"
INTERRUPTED_TEXT = "the reply was interrupted"


def init_replies(app: Flask) -> None:
    """The per-process stream caps and the reply limits, from the configuration."""
    config = app.config
    app.extensions["stream_slots"] = StreamSlots(max(1, int(config["MAX_CONCURRENT_STREAMS"])))
    app.extensions["user_streams"] = UserStreams(max(1, int(config["MAX_STREAMS_PER_USER"])))
    app.extensions["reply_limits"] = ReplyLimits(
        max_seconds=float(config["MAX_REPLY_SECONDS"]),
        max_chars=int(config["MAX_REPLY_CHARS"]),
        heartbeat_seconds=float(config["REPLY_HEARTBEAT_SECONDS"]),
    )


# --- pending-state transitions -------------------------------------------------------------


def _leave_pending(message_id: int, status: str, **values: Any) -> bool:
    """pending → `status`, atomically; False when the message had already left pending."""
    result = db.session.execute(
        update(ChatMessage)
        .where(ChatMessage.id == message_id, ChatMessage.status == "pending")
        .values(status=status, updated_at=utcnow(), **values),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    return result.rowcount == 1


def claim(message_id: int) -> bool:
    """pending → streaming: this request runs the reply; False when another one does."""
    return _leave_pending(message_id, "streaming")


def refuse_busy(message_id: int, reason: str = BUSY_TEXT) -> bool:
    """pending → error BUSY: the process, or the user, is at its stream limit."""
    return _leave_pending(message_id, "error", error_code=codes.BUSY, error_text=reason)


def cancel_pending(message_id: int) -> bool:
    """Stop pressed before the stream began: pending → stopped."""
    return _leave_pending(message_id, "stopped")


def settle_abandoned(conversation_id: int, older_than: timedelta) -> int:
    """Mark replies "incomplete" whose stream stopped writing long ago (a server that died
    mid-stream), so no page polls them forever. Returns how many were settled."""
    result = db.session.execute(
        update(ChatMessage)
        .where(
            ChatMessage.conversation_id == conversation_id,
            ChatMessage.status == "streaming",
            ChatMessage.updated_at < utcnow() - older_than,
        )
        .values(
            status="incomplete",
            error_code=codes.LLM_REQUEST_FAILED,
            error_text="the reply was interrupted: the server stopped writing it",
            updated_at=utcnow(),
        ),
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
    """Nothing new yet: the provider is silent (a chance to notice a browser that left)."""


@dataclass(frozen=True)
class ReplyEnd:
    """The reply is over; `message` is what was saved (or will be, once the database is
    back)."""

    message: ChatMessage


ReplyEvent = ReplyDelta | ReplyHeartbeat | ReplyEnd


def open_reply(message: ChatMessage, user_id: int) -> ReplyStream | EndedReply | None:
    """Start the pending reply `message` for its owner, or None when another request
    already has it.

    Past the process's stream cap, or the user's, the reply is refused at once: the stream
    holds just its `ReplyEnd` (error BUSY). Everything the model call needs is read now;
    the stream's events only talk to the provider and the recorder's own sessions.
    """
    extensions = current_app.extensions
    slots: StreamSlots = extensions["stream_slots"]
    user_streams: UserStreams = extensions["user_streams"]
    if not slots.try_acquire():
        return _refused(message, BUSY_TEXT)
    if not user_streams.try_acquire(user_id):
        slots.release()
        limit = user_streams.limit
        replies = f"{limit} reply" if limit == 1 else f"{limit} replies"
        return _refused(message, USER_BUSY_TEXT.format(replies=replies))

    def release() -> None:
        user_streams.release(user_id)
        slots.release()

    try:
        if not claim(message.id):
            release()
            return None
        events, recorder = _start(message, user_id)
    except BaseException:
        release()
        raise
    return ReplyStream(events, recorder, extensions["reply_limits"], on_close=release)


def _refused(message: ChatMessage, reason: str) -> EndedReply | None:
    if not refuse_busy(message.id, reason):
        return None
    db.session.refresh(message)
    return EndedReply(message)


def _start(message: ChatMessage, user_id: int) -> tuple[ChatStream, ReplyRecorder]:
    """Read what the reply needs (model, provider, presets, history) and start the call."""
    recorder = ReplyRecorder(
        db.engine,
        message.id,
        model_name=message.model_name,
        preset_name=message.preset_name,
        call=usage.ChatCall(user_id=user_id),
    )
    llm_model = (
        db.session.get(
            LLMModel,
            message.llm_model_id,
            options=[joinedload(LLMModel.llm_provider), selectinload(LLMModel.llm_presets)],
        )
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
    turns, question = reply_turns(message, llm_model, preset, system)
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
    """The events of one reply: `ReplyDelta`s and `ReplyHeartbeat`s, then one `ReplyEnd`.

    Iterate it in the response body; call `close()` when the response closes, whether or
    not it was iterated (a client gone before the first byte never starts the body). A
    reply closed before its end is recorded as stopped, with the text that arrived, and its
    provider call is cancelled.
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
        self._started = False
        self._run = self._generate()
        self._closed = False

    def __iter__(self) -> Iterator[ReplyEvent]:
        return self._run

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._run.close()
            if not self._started:  # no pump took the events: close them here
                self._events.close()
            if self._recorder.saved is None:  # closed before its body ever ran
                self._recorder.stop()
        finally:
            self._on_close()

    def _generate(self) -> Iterator[ReplyEvent]:
        self._started = True
        recorder, limits = self._recorder, self._limits
        deadline = self._clock() + limits.max_seconds
        pump = Pump(self._events)
        try:
            while True:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    seconds = f"{limits.max_seconds:g}"
                    yield ReplyEnd(self._cut(f"the reply reached its {seconds}-second limit"))
                    return
                item = pump.next(timeout=min(limits.heartbeat_seconds, remaining))
                if item is None:
                    yield ReplyHeartbeat()
                    continue
                if item is Pump.END:
                    ended = Result.failure(codes.LLM_REQUEST_FAILED, ENDED_EARLY_TEXT)
                    yield ReplyEnd(recorder.finish(StreamEvent("error", result=ended)))
                    return
                if isinstance(item, Exception):
                    raise item
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
        except GeneratorExit:
            self._events.cancel()
            recorder.stop()
            raise
        except Exception:
            log.exception("chat reply %s failed while streaming", recorder.message_id)
            self._events.cancel()
            yield ReplyEnd(recorder.fail(SERVER_ERROR_TEXT))
        finally:
            if recorder.saved is None:  # ended some other way (the worker shutting down, …)
                self._events.cancel()
                recorder.fail(INTERRUPTED_TEXT)

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
