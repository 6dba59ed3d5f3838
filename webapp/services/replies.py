"""The life of one assistant reply: claim it, run it, record it, and say how it ended.

Sending a message stores a turn whose reply is "pending" (see conversations.add_turn). One
stream request then opens the reply (`open_reply`): it takes a stream slot (or refuses the
reply as BUSY), claims the message (pending → streaming, one conditional UPDATE, so a
reconnecting browser never runs the model twice), reads everything the model call needs,
and hands back a `ReplyStream` of events — text deltas, then one `ReplyEnd` with the saved
message. A `ReplyRecorder` writes the outcome through its own short sessions (complete,
error, incomplete, stopped), so the reply is saved whatever happens to the request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session, joinedload, selectinload

from webapp.extensions import db
from webapp.llm import results as codes
from webapp.llm.results import Result
from webapp.llm.run import StreamEvent
from webapp.models import ChatMessage, LLMModel
from webapp.models.types import utcnow
from webapp.models.validation import storable
from webapp.services.chat import chat_events
from webapp.services.conversations import turns_before

log = logging.getLogger(__name__)

CHECKPOINT_SECONDS = 1.0
BUSY_TEXT = "ModelDesk is busy: too many replies are streaming right now. Try again in a moment."
ENDED_EARLY_TEXT = "the reply ended before it was complete"
SERVER_ERROR_TEXT = "the reply stopped because of an error on the server"
INTERRUPTED_TEXT = "the reply was interrupted"


# --- the per-process cap on open streams ---------------------------------------------------


class StreamSlots:
    """A counting semaphore that says no instead of waiting.

    Each open stream holds a server thread for its whole duration. Past the cap a new reply
    is refused at once rather than queueing until the thread pool is exhausted and every
    page of this process stalls.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._free = threading.BoundedSemaphore(limit)

    def try_acquire(self) -> bool:
        return self._free.acquire(blocking=False)

    def release(self) -> None:
        self._free.release()


def init_stream_slots(app: Flask) -> None:
    app.extensions["stream_slots"] = StreamSlots(max(1, int(app.config["MAX_CONCURRENT_STREAMS"])))


def stream_slots() -> StreamSlots:
    return current_app.extensions["stream_slots"]


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


def refuse_busy(message_id: int) -> bool:
    """pending → error BUSY: the process is at its stream limit."""
    return _leave_pending(message_id, "error", error_code=codes.BUSY, error_text=BUSY_TEXT)


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
class ReplyEnd:
    """The reply is over; `message` is what was saved."""

    message: ChatMessage


ReplyEvent = ReplyDelta | ReplyEnd


def open_reply(message: ChatMessage, slots: StreamSlots) -> ReplyStream | EndedReply | None:
    """Start the pending reply `message`, or None when another request already has it.

    Past the stream cap the reply is refused at once: the stream holds just its `ReplyEnd`
    (error BUSY). Everything the model call needs is read now; the stream's events only
    talk to the provider and the recorder's own sessions.
    """
    if not slots.try_acquire():
        if not _leave_pending(message.id, "error", error_code=codes.BUSY, error_text=BUSY_TEXT):
            return None
        db.session.refresh(message)
        return EndedReply(message)
    try:
        if not claim(message.id):
            slots.release()
            return None
        events, recorder = _start(message)
    except BaseException:
        slots.release()
        raise
    return ReplyStream(events, recorder, on_close=slots.release)


def _start(message: ChatMessage) -> tuple[Iterator[StreamEvent], ReplyRecorder]:
    """Read what the reply needs (model, provider, presets, history) and start the call."""
    recorder = ReplyRecorder(
        db.engine, message.id, model_name=message.model_name, preset_name=message.preset_name
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
        return iter([StreamEvent("error", result=failure)]), recorder
    if message.preset_name is not None and message.llm_preset_id is None:
        failure = Result.failure(
            codes.PRESET_NOT_FOUND, "the preset chosen for this reply no longer exists"
        )
        return iter([StreamEvent("error", result=failure)]), recorder
    preset = next((p for p in llm_model.llm_presets if p.id == message.llm_preset_id), None)
    turns, question = turns_before(message.conversation_id, message.id)
    events = chat_events(
        llm_model,
        user_text=question or "",
        history=turns,
        system=(message.details or {}).get("system_prompt"),
        preset=preset,
    )
    recorder.model_name = llm_model.name
    recorder.preset_name = preset.name if preset else message.preset_name
    # Everything is read; give the connection back while the reply streams.
    db.session.close()
    return events, recorder


class ReplyStream:
    """The events of one reply: `ReplyDelta`s, then exactly one `ReplyEnd`.

    Iterate it in the response body; call `close()` when the response closes, whether or
    not it was iterated (a client gone before the first byte never starts the body). A
    reply closed before its end is recorded as stopped, with the text that arrived.
    """

    def __init__(
        self,
        events: Iterator[StreamEvent],
        recorder: ReplyRecorder,
        *,
        on_close: Callable[[], None],
    ) -> None:
        self._events = events
        self._recorder = recorder
        self._on_close = on_close
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
            _close(self._events)
            if self._recorder.saved is None:  # closed before its body ever ran
                self._recorder.stop()
        finally:
            self._on_close()

    def _generate(self) -> Iterator[ReplyEvent]:
        recorder = self._recorder
        try:
            for event in self._events:
                if event.type != "delta":
                    yield ReplyEnd(recorder.finish(event))
                    return
                if event.content:
                    recorder.add(event.content)
                    yield ReplyDelta(event.content)
            ended = Result.failure(codes.LLM_REQUEST_FAILED, ENDED_EARLY_TEXT)
            yield ReplyEnd(recorder.finish(StreamEvent("error", result=ended)))
        except GeneratorExit:
            _close(self._events)
            recorder.stop()
            raise
        except Exception:
            log.exception("chat reply %s failed while streaming", recorder.message_id)
            _close(self._events)
            yield ReplyEnd(recorder.fail(SERVER_ERROR_TEXT))
        finally:
            _close(self._events)
            if recorder.saved is None:  # ended some other way (the worker shutting down, …)
                recorder.fail(INTERRUPTED_TEXT)


class EndedReply:
    """A reply that ended before it could stream (refused as busy): just its end."""

    def __init__(self, message: ChatMessage) -> None:
        self._message = message

    def __iter__(self) -> Iterator[ReplyEvent]:
        yield ReplyEnd(self._message)

    def close(self) -> None:
        """Nothing to release: no slot was taken."""


def _close(events: Any) -> None:
    close = getattr(events, "close", None)
    if close is not None:
        close()


# --- recording -----------------------------------------------------------------------------


class ReplyRecorder:
    """Collects a reply as it streams and writes it to its message with its own session.

    The request's session is closed while a reply streams (a connection per open stream
    would drain the pool), so every write here opens a short session on `engine`.
    """

    def __init__(
        self,
        engine: Engine,
        message_id: int,
        *,
        model_name: str | None,
        preset_name: str | None,
        checkpoint_seconds: float = CHECKPOINT_SECONDS,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.engine = engine
        self.message_id = message_id
        self.model_name = model_name
        self.preset_name = preset_name
        self.pieces: list[str] = []
        self.saved: ChatMessage | None = None
        self._clock = clock
        self._started = clock()
        self._first_token_ms: float | None = None
        self._checkpoint_seconds = checkpoint_seconds
        self._last_checkpoint = self._started

    @property
    def content(self) -> str:
        return storable("".join(self.pieces))

    def add(self, text: str) -> None:
        """One delta; now and then the text so far is saved, so a reload (or another tab)
        sees it grow and an abandoned stream can be told from a slow one."""
        if self._first_token_ms is None:
            self._first_token_ms = self._elapsed_ms()
        self.pieces.append(text)
        now = self._clock()
        if now - self._last_checkpoint >= self._checkpoint_seconds:
            self._last_checkpoint = now
            self._checkpoint()

    def finish(self, event: StreamEvent) -> ChatMessage:
        """Record the final `done` or `error` event."""
        result = event.result or Result.failure(
            codes.INTERNAL_ERROR, "the stream ended without a result"
        )
        value = result.value
        timings = value.get("timings") or {}
        values: dict[str, Any] = {
            "ttft_ms": timings.get("ttft_ms", self._first_token_ms),
            "total_ms": timings.get("total_ms") or self._elapsed_ms(),
        }
        if result.success:
            preset = value.get("preset")
            return self._save(
                status="complete",
                usage=value.get("usage"),
                preset_name=preset.name if preset is not None else self.preset_name,
                details={"finish_reason": value.get("finish_reason")},
                **values,
            )
        details: dict[str, Any] = {}
        if result.code == codes.PROMPT_TOO_LONG:
            details["budget"] = {
                key: value.get(key)
                for key in ("estimated_tokens", "max_tokens", "reserve_tokens", "limit_tokens")
            }
        return self._save(
            status="incomplete" if self.pieces else "error",
            error_code=result.code,
            error_text=storable("; ".join(result.errors)) or None,
            details=details,
            **values,
        )

    def stop(self) -> ChatMessage:
        """The browser went away (Stop, reload, closed tab): keep what arrived."""
        return self._save(status="stopped", **self._own_timings())

    def fail(self, text: str) -> ChatMessage:
        """Something broke on our side mid-stream; keep what arrived and say so."""
        status = "incomplete" if self.pieces else "error"
        return self._save(
            status=status, error_code=codes.INTERNAL_ERROR, error_text=text, **self._own_timings()
        )

    def _own_timings(self) -> dict[str, Any]:
        return {"ttft_ms": self._first_token_ms, "total_ms": self._elapsed_ms()}

    def _elapsed_ms(self) -> float:
        return round((self._clock() - self._started) * 1000, 2)

    def _checkpoint(self) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(ChatMessage)
                .where(ChatMessage.id == self.message_id, ChatMessage.status == "streaming")
                .values(content=self.content, updated_at=utcnow())
            )

    def _save(
        self, *, status: str, details: dict[str, Any] | None = None, **values: Any
    ) -> ChatMessage:
        """Write the outcome once; later calls return what was saved."""
        if self.saved is not None:
            return self.saved
        with Session(self.engine, expire_on_commit=False) as session:
            message = session.get(ChatMessage, self.message_id)
            if message is None:  # the conversation was deleted while the reply streamed
                message = ChatMessage(id=self.message_id, role="assistant", content=self.content)
            else:
                message.status = status
                message.content = self.content
                message.model_name = self.model_name
                message.preset_name = values.pop("preset_name", self.preset_name)
                message.details = {**(message.details or {}), **(details or {})}
                for name, value in values.items():
                    setattr(message, name, value)
                message.updated_at = utcnow()
                session.commit()
        message.status = status
        self.saved = message
        return message
