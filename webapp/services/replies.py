"""The life of one assistant reply: claim it, run it, record it, and say how it ended.

Sending a message stores a turn whose reply is "pending" (see conversations.add_turn). One
stream request then opens the reply (`open_reply`): it takes a stream slot (or refuses the
reply as BUSY), claims the message (pending → streaming, one conditional UPDATE, so a
reconnecting browser never runs the model twice), reads everything the model call needs,
and hands back a `ReplyStream` of events — text deltas, then one `ReplyEnd` with the saved
message. A `ReplyRecorder` writes the outcome through its own short sessions (complete,
error, incomplete, stopped), so the reply is saved whatever happens to the request.

The provider is read on a thread of its own (`webapp.llm.pump.Pump`): the response thread
waits for events with a timeout, so while the provider is silent it sends a heartbeat (which
is how a browser that left is noticed) and enforces the reply's time limit; a stop cancels the
provider call at once (`ChatStream.cancel`), even mid-silence. A database that is away when
the reply ends does not cost the reader the reply: the end is shown from memory and saved
when the database answers again (bounded retries).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import Engine, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, joinedload, selectinload

from webapp.extensions import db
from webapp.llm import results as codes
from webapp.llm.pump import Pump
from webapp.llm.results import Result
from webapp.llm.run import ChatStream, StreamEvent
from webapp.models import ChatMessage, LLMModel
from webapp.models.types import utcnow
from webapp.models.validation import storable
from webapp.services import usage
from webapp.services.chat import chat_events
from webapp.services.conversations import turns_before

log = logging.getLogger(__name__)

CHECKPOINT_SECONDS = 1.0
# Saving an outcome while the database is away: tries, and the wait before each retry.
SAVE_ATTEMPTS = 30
SAVE_RETRY_SECONDS = 2.0
BUSY_TEXT = "ModelDesk is busy: too many replies are streaming right now. Try again in a moment."
USER_BUSY_TEXT = (
    "you have reached your limit of {replies} being written at once: wait for one to "
    "finish (or stop it) and send again"
)
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
        self.open = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self.open >= self.limit:
                return False
            self.open += 1
            return True

    def release(self) -> None:
        with self._lock:
            if self.open <= 0:
                raise ValueError("released more stream slots than were taken")
            self.open -= 1


class UserStreams:
    """How many replies each user has streaming in this process, capped per user, so one
    person's tabs cannot take every stream slot."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[int] = Counter()
        self._lock = threading.Lock()

    def try_acquire(self, user_id: int) -> bool:
        with self._lock:
            if self._open[user_id] >= self.limit:
                return False
            self._open[user_id] += 1
            return True

    def release(self, user_id: int) -> None:
        with self._lock:
            self._open[user_id] -= 1
            if self._open[user_id] <= 0:
                del self._open[user_id]


@dataclass(frozen=True)
class ReplyLimits:
    """How long and how large one reply may grow, and how often a silent one is pinged."""

    max_seconds: float = 600.0
    max_chars: int = 200_000
    heartbeat_seconds: float = 1.0


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
    turns, question = turns_before(message.conversation_id, message.id)
    system = (message.details or {}).get("system_prompt")
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


# --- recording -----------------------------------------------------------------------------


class ReplyRecorder:
    """Collects a reply as it streams and writes it to its message with its own session.

    The request's session is closed while a reply streams (a connection per open stream
    would drain the pool), so every write here opens a short session on `engine`. A
    checkpoint appends only the text that is new since the last one. When the database
    does not answer, a checkpoint is skipped and the outcome is kept in memory and saved by
    a background retry, so the reader still gets the reply's end at once.
    """

    def __init__(
        self,
        engine: Engine,
        message_id: int,
        *,
        model_name: str | None,
        preset_name: str | None,
        call: usage.ChatCall = usage.UNKNOWN_CHAT_CALL,
        checkpoint_seconds: float = CHECKPOINT_SECONDS,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.engine = engine
        self.message_id = message_id
        self.model_name = model_name
        self.preset_name = preset_name
        self.call = call
        self.pieces: list[str] = []
        self.length = 0
        self.saved: ChatMessage | None = None
        self._clock = clock
        self._started = clock()
        self._first_token_ms: float | None = None
        self._checkpoint_seconds = checkpoint_seconds
        self._last_checkpoint = self._started
        self._checkpointed = 0  # pieces already in the database

    @property
    def content(self) -> str:
        return storable("".join(self.pieces))

    def add(self, text: str) -> None:
        """One delta; now and then the new text is saved, so a reload (or another tab)
        sees it grow and an abandoned stream can be told from a slow one."""
        if self._first_token_ms is None:
            self._first_token_ms = self._elapsed_ms()
        self.pieces.append(text)
        self.length += len(text)
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

    def cut(self, reason: str) -> ChatMessage:
        """The reply reached one of its limits: keep what arrived, say which limit."""
        return self._save(
            status="incomplete",
            error_code=codes.REPLY_LIMIT,
            error_text=reason,
            **self._own_timings(),
        )

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
        new_text = storable("".join(self.pieces[self._checkpointed :]))
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    update(ChatMessage)
                    .where(ChatMessage.id == self.message_id, ChatMessage.status == "streaming")
                    .values(content=ChatMessage.content + new_text, updated_at=utcnow())
                )
        except DBAPIError as error:  # the database is away: the final save catches up
            log.warning("checkpoint of reply %s skipped: %s", self.message_id, error.orig)
            return
        self._checkpointed = len(self.pieces)

    def _save(
        self, *, status: str, details: dict[str, Any] | None = None, **values: Any
    ) -> ChatMessage:
        """Write the outcome once; later calls return what was saved. When the database is
        away, the outcome is returned from memory and written by a background retry."""
        if self.saved is not None:
            return self.saved
        outcome = _Outcome(
            status=status,
            content=self.content,
            model_name=self.model_name,
            preset_name=values.pop("preset_name", self.preset_name),
            details=details or {},
            values=values,
        )
        try:
            message = outcome.write(self.engine, self.message_id)
        except DBAPIError as error:
            log.warning(
                "reply %s could not be saved now (%s); retrying in the background",
                self.message_id,
                error.orig,
            )
            message = outcome.unsaved(self.message_id)
            _retry_in_background(outcome, self.engine, self.message_id)
        self.saved = message
        # Buffered: the usage writer's thread does the INSERT, batched with others.
        usage.record(
            self.call.event(
                message_status=status,
                error_code=values.get("error_code"),
                usage=values.get("usage"),
                reply=outcome.content,
                ttft_ms=values.get("ttft_ms"),
                total_ms=values["total_ms"],
            )
        )
        return message


@dataclass(frozen=True)
class _Outcome:
    """How a reply ended, ready to be written (now, or later by a retry)."""

    status: str
    content: str
    model_name: str | None
    preset_name: str | None
    details: dict[str, Any]
    values: dict[str, Any]

    def write(self, engine: Engine, message_id: int) -> ChatMessage:
        with Session(engine, expire_on_commit=False) as session:
            message = session.get(ChatMessage, message_id)
            if message is None:  # the conversation was deleted while the reply streamed
                return self.unsaved(message_id)
            self._apply(message)
            message.details = {**(message.details or {}), **self.details}
            message.updated_at = utcnow()
            session.commit()
        return message

    def unsaved(self, message_id: int) -> ChatMessage:
        """The message as it will be saved, for showing now."""
        message = ChatMessage(id=message_id, role="assistant")
        self._apply(message)
        message.details = dict(self.details)
        return message

    def _apply(self, message: ChatMessage) -> None:
        message.status = self.status
        message.content = self.content
        message.model_name = self.model_name
        message.preset_name = self.preset_name
        for name, value in self.values.items():
            setattr(message, name, value)


def _retry_in_background(outcome: _Outcome, engine: Engine, message_id: int) -> None:
    def retry() -> None:
        for _ in range(SAVE_ATTEMPTS):
            time.sleep(SAVE_RETRY_SECONDS)
            try:
                outcome.write(engine, message_id)
            except DBAPIError:
                continue
            log.info("reply %s saved after the database came back", message_id)
            return
        log.error("reply %s could not be saved: the database did not come back", message_id)

    threading.Thread(target=retry, name=f"save-reply-{message_id}", daemon=True).start()
