"""The life of one assistant reply: claim it, run it, record it, and say how it ended.

Sending a message stores a turn whose reply is "pending" (see conversations.add_turn). One
stream request then opens the reply (`open_reply`): it takes a stream slot (see
`reply_limits`; or refuses the reply as BUSY), waits its turn to start, claims the message
for its owner (`reply_states.claim_own`: pending → streaming in one conditional statement
that also returns the history and what the call needs, so a reconnecting browser never runs
the model twice), takes the model's configuration (cached while its version holds), and
hands back a `ReplyStream` of events — text deltas, then one `ReplyEnd`
with the saved message. A `ReplyRecorder` (see `reply_recorder`) writes the outcome through
its own short sessions (complete, error, incomplete, stopped), so the reply is saved whatever
happens to the request.

The reply's run (`reply_runs`) reads the provider on a thread of the process; Stop and the
time limit cancel the provider call from another thread at once (`ChatStream.cancel`), even
mid-silence. A database that is away when the reply ends does not cost the reader the reply:
the end is shown from memory and saved when the database answers again (bounded retries).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from flask import Flask, current_app

from webapp.extensions import db
from webapp.llm import results as codes
from webapp.llm.results import Result
from webapp.llm.run import ChatStream, StreamEvent
from webapp.models import ChatMessage
from webapp.services import usage
from webapp.services.alternatives import reply_prompt
from webapp.services.chat import chat_events
from webapp.services.conversation_budget import fitted_history
from webapp.services.model_cache import ModelCache
from webapp.services.reply_limits import ReplyLimits, StartGate, StreamSlots, UserStreams
from webapp.services.reply_recorder import ReplyRecorder
from webapp.services.reply_states import (
    BUSY_TEXT,
    SERVER_ERROR_TEXT,
    ClaimedReply,
    claim_own,
    fail_claimed,
    refuse_busy,
)
from webapp.services.users import SessionUser

log = logging.getLogger(__name__)

USER_BUSY_TEXT = (
    "you have reached your limit of {replies} being written at once: wait for one to "
    "finish (or stop it) and send again"
)
ENDED_EARLY_TEXT = "the reply ended before it was complete"
# How long a reply waits for its turn to start (`StartGate`) before it is refused as busy.
START_WAIT_SECONDS = 30.0
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
            fail_claimed(message_id)
        raise
    finally:
        gate.release()
    return ReplyStream(events, recorder, extensions["reply_limits"], on_close=release)


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
