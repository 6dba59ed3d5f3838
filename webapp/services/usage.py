"""Usage: one record per request served — a gateway call (an app key) or a chat reply (a user).

Recording never touches the database: `record()` appends to the current app's buffer and a
writer thread (one per process) writes the buffer in batches, one multi-row INSERT each,
every `USAGE_FLUSH_SECONDS` or as soon as `USAGE_BATCH_SIZE` events wait. When the database
does not answer, the events stay in the buffer and go in when it answers again; past
`USAGE_MAX_PENDING` the oldest are dropped (and the count logged) so an outage cannot eat the
process's memory. `flush()` writes everything now (tests, the CLI, shutdown).

Reading the records back (summaries, the daily chart, the CSV) is `usage_reports`'s.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app, has_app_context
from sqlalchemy import Engine, insert
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from webapp.extensions import db
from webapp.llm import results as codes
from webapp.llm.budget import default_estimator, estimate_prompt_tokens
from webapp.models import UsageRecord
from webapp.models.validation import storable

log = logging.getLogger(__name__)

GATEWAY = "gateway"
CHAT = "chat"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class UsageEvent:
    """What one request cost and how it went.

    `status` is the HTTP status the caller got (a chat reply: 200 when it completed, else the
    status its result code maps to); `error_code` names why it failed (an OpenAI error code on
    the gateway, a result code in the chat). Token counts come from the upstream's usage;
    `estimated` says they were counted here because the upstream sent none.
    """

    source: str
    status: int
    total_ms: float
    stream: bool
    model_key: str | None = None
    llm_model_id: int | None = None
    preset_key: str | None = None
    app_key_id: int | None = None
    user_id: int | None = None
    error_code: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    estimated: bool = False
    ttft_ms: float | None = None
    created_at: datetime = field(default_factory=_now)


# --- chat replies --------------------------------------------------------------------------

# The HTTP status a chat reply's outcome stands for, so chat and gateway rows count alike.
CHAT_STATUS_BY_CODE = {
    codes.EMPTY_PROMPT: 400,
    codes.INVALID_INPUT: 400,
    codes.PROMPT_TOO_LONG: 400,
    codes.MODEL_DISABLED: 404,
    codes.MODEL_NOT_FOUND: 404,
    codes.PRESET_NOT_FOUND: 404,
    codes.REPLY_LIMIT: 413,
    codes.INTERNAL_ERROR: 500,
    codes.LLM_REQUEST_FAILED: 502,
    codes.BUSY: 503,
}
# The reader stopped the reply (nginx's "client closed request"; the gateway's disconnects).
STOPPED_STATUS = 499
# Outcomes decided before anything reached the provider: they cost no tokens.
NOTHING_SENT_CODES = frozenset(
    {
        codes.EMPTY_PROMPT,
        codes.INVALID_INPUT,
        codes.PROMPT_TOO_LONG,
        codes.MODEL_DISABLED,
        codes.MODEL_NOT_FOUND,
        codes.PRESET_NOT_FOUND,
        codes.BUSY,
    }
)


def chat_status(message_status: str, error_code: str | None) -> int:
    """200 for a completed reply, 499 for a stopped one, else the status of its code."""
    if message_status == "complete":
        return 200
    if message_status == "stopped":
        return STOPPED_STATUS
    return CHAT_STATUS_BY_CODE.get(error_code or "", 500)


@dataclass(frozen=True)
class ChatCall:
    """What a chat reply's usage record needs beyond its outcome: who asked, which model and
    preset, and the prompt (to estimate its tokens when the provider reports none)."""

    user_id: int | None
    llm_model_id: int | None = None
    model_key: str | None = None
    preset_key: str | None = None
    stream: bool = True
    model_hint: str | None = None
    message_overhead_tokens: int = 0
    prompt: tuple[dict[str, str], ...] = ()

    def event(
        self,
        *,
        message_status: str,
        error_code: str | None,
        usage: dict[str, Any] | None,
        reply: str,
        ttft_ms: float | None,
        total_ms: float,
    ) -> UsageEvent:
        """The usage event of the reply that ended so."""
        prompt_tokens, completion_tokens, estimated = self._tokens(error_code, usage, reply)
        return UsageEvent(
            source=CHAT,
            status=chat_status(message_status, error_code),
            total_ms=total_ms,
            stream=self.stream,
            model_key=self.model_key,
            llm_model_id=self.llm_model_id,
            preset_key=self.preset_key,
            user_id=self.user_id,
            error_code=error_code,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            estimated=estimated,
            ttft_ms=ttft_ms,
        )

    def _tokens(
        self, error_code: str | None, usage: dict[str, Any] | None, reply: str
    ) -> tuple[int, int, bool]:
        if error_code in NOTHING_SENT_CODES:
            return 0, 0, False
        usage = usage or {}
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(prompt, int) and isinstance(completion, int):
            return prompt, completion, False
        # A stopped or failed reply, or a provider that reports no usage: count it here.
        if not isinstance(prompt, int):
            prompt = estimate_prompt_tokens(
                self.prompt,
                message_overhead_tokens=self.message_overhead_tokens,
                model_hint=self.model_hint,
            )
        if not isinstance(completion, int):
            completion = default_estimator().estimate(reply, self.model_hint)
        return prompt, completion, True


# A reply recorded with nothing known about its call (built outside `open_reply`).
UNKNOWN_CHAT_CALL = ChatCall(user_id=None)


# --- recording -----------------------------------------------------------------------------

_COLUMNS = tuple(column.name for column in UsageRecord.__table__.columns if column.name != "id")
# Text a caller chose (the gateway's model name) is cut to fit its column on every database.
_TEXT_LIMITS = {
    name: UsageRecord.__table__.columns[name].type.length
    for name in ("model_key", "preset_key", "error_code")
}


def _row(event: UsageEvent) -> dict[str, Any]:
    row = {name: getattr(event, name) for name in _COLUMNS}
    for name, limit in _TEXT_LIMITS.items():
        if row[name] is not None:
            row[name] = storable(row[name])[:limit]
    return row


class UsageBuffer:
    """The events of one app waiting for its database, oldest first."""

    def __init__(
        self, app: Flask | None, *, batch_size: int, max_pending: int, flush_seconds: float = 0.0
    ) -> None:
        self.batch_size = max(1, batch_size)
        self.flush_seconds = flush_seconds
        self.max_pending = max(1, max_pending)
        self._app = app
        self._engine: Engine | None = None
        self._events: deque[UsageEvent] = deque()
        self._lock = threading.Lock()
        # One writer at a time, so flush() returns only once a batch in flight is written.
        self._writing = threading.Lock()
        self._dropped = 0
        self._failing = False

    def __len__(self) -> int:
        return len(self._events)

    @property
    def failing(self) -> bool:
        """The last flush found the database away."""
        return self._failing

    def add(self, event: UsageEvent) -> bool:
        """Keep `event`; True when a whole batch is waiting."""
        with self._lock:
            self._events.append(event)
            self._trim()
            return len(self._events) >= self.batch_size

    def take_all(self) -> list[UsageEvent]:
        with self._lock:
            events = list(self._events)
            self._events.clear()
        return events

    def adopt(self, other: UsageBuffer) -> None:
        """Take over the events `other` holds (recorded before any app was set up)."""
        for event in other.take_all():
            self.add(event)

    def flush(self) -> int:
        """Write every pending event; returns how many were written. When the database does
        not answer, the events are kept for the next flush and the error is logged once."""
        if self._app is None:
            return 0
        written = 0
        with self._writing:
            self._report_dropped()
            while batch := self._take(self.batch_size):
                try:
                    written += self._write(batch)
                except _DatabaseAway as away:
                    written += away.written
                    if not self._failing:
                        log.warning(
                            "usage: the database did not answer (%s); %d events kept for later",
                            away.reason,
                            len(self._events),
                        )
                    self._failing = True
                    return written
        if self._failing and written:
            log.info("usage: the database answers again; %d events written", written)
        self._failing = False
        return written

    def _take(self, count: int) -> list[UsageEvent]:
        with self._lock:
            return [self._events.popleft() for _ in range(min(count, len(self._events)))]

    def _put_back(self, batch: list[UsageEvent]) -> None:
        with self._lock:
            self._events.extendleft(reversed(batch))
            self._trim()

    def _trim(self) -> None:
        while len(self._events) > self.max_pending:
            self._events.popleft()
            self._dropped += 1

    def _report_dropped(self) -> None:
        with self._lock:
            dropped, self._dropped = self._dropped, 0
        if dropped:
            log.warning(
                "usage: dropped the %d oldest events (more than %d were waiting for the database)",
                dropped,
                self.max_pending,
            )

    def _write(self, batch: list[UsageEvent]) -> int:
        """Write `batch` in one INSERT; when the database is away, it waits again in the
        buffer (what was not written of it) and `_DatabaseAway` says so."""
        engine = self._engine_or_resolve()
        try:
            with engine.begin() as connection:
                connection.execute(insert(UsageRecord), [_row(event) for event in batch])
        except (IntegrityError, DataError):
            return self._write_one_by_one(engine, batch)
        except DBAPIError as error:
            self._put_back(batch)
            raise _DatabaseAway(0, error.orig) from error
        return len(batch)

    def _write_one_by_one(self, engine: Engine, batch: list[UsageEvent]) -> int:
        """A batch the database refused for its content, not for being away (a user or
        model deleted before the write): each event goes in alone."""
        written = 0
        for index, event in enumerate(batch):
            try:
                written += _insert_alone(engine, _row(event))
            except DBAPIError as error:
                self._put_back(batch[index:])
                raise _DatabaseAway(written, error.orig) from error
        return written

    def _engine_or_resolve(self) -> Engine:
        if self._engine is None:
            assert self._app is not None
            with self._app.app_context():
                self._engine = db.engine
        return self._engine


class _DatabaseAway(Exception):
    """The database did not answer; `written` events of the batch went in before."""

    def __init__(self, written: int, reason: object) -> None:
        super().__init__(reason)
        self.written = written
        self.reason = reason


def _insert_alone(engine: Engine, row: dict[str, Any]) -> int:
    """1 once `row` is written — as ON DELETE SET NULL would have left it, if its user or
    model is gone —, 0 when the database refuses it even so (logged: retrying cannot help)."""
    refused: DBAPIError | None = None
    for attempt in (row, {**row, "user_id": None, "llm_model_id": None}):
        try:
            with engine.begin() as connection:
                connection.execute(insert(UsageRecord), [attempt])
        except (IntegrityError, DataError) as error:
            refused = error
            continue
        return 1
    log.error("usage: dropped an event the database refuses: %s", refused and refused.orig)
    return 0


class _Writer:
    """The process's writer thread: flushes the buffers of the apps that write in the
    background each interval, or sooner when a batch is waiting. Started on the first event,
    so a server that forks after loading the app starts its own in each worker."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.wake = threading.Event()
        self.pid = os.getpid()
        threading.Thread(target=self._run, name="usage-writer", daemon=True).start()

    def _run(self) -> None:
        while True:
            self.wake.wait(self.interval)
            self.wake.clear()
            _flush_background_buffers()


_buffers: weakref.WeakSet[UsageBuffer] = weakref.WeakSet()
# Events recorded before any app was set up, for the first app to take over.
_unbound = UsageBuffer(None, batch_size=200, max_pending=100_000)
# Where events go outside an app context (a response closed after its request ended): the
# newest app's buffer (there is one app per process outside tests).
_default = _unbound
_writer: _Writer | None = None
_writer_lock = threading.Lock()
_registry_lock = threading.Lock()


def init_usage(app: Flask) -> None:
    """Give `app` its usage buffer; it becomes the buffer for events recorded outside any app
    context (one app per process outside tests)."""
    global _default
    config = app.config
    buffer = UsageBuffer(
        app,
        batch_size=int(config["USAGE_BATCH_SIZE"]),
        max_pending=int(config["USAGE_MAX_PENDING"]),
        flush_seconds=float(config["USAGE_FLUSH_SECONDS"]),
    )
    buffer.adopt(_unbound)
    app.extensions["usage"] = buffer
    with _registry_lock:
        _buffers.add(buffer)
    _default = buffer


def _current_buffer() -> UsageBuffer:
    if has_app_context():
        return current_app.extensions.get("usage", _default)
    return _default


def _live_buffers() -> list[UsageBuffer]:
    with _registry_lock:
        return list(_buffers)


def record(event: UsageEvent) -> None:
    """Keep `event` for the usage tables; never blocks on the database (the hot path calls it)."""
    buffer = _current_buffer()
    batch_waiting = buffer.add(event)
    writer = _writer if _writer is not None and _writer.pid == os.getpid() else _start_writer()
    # While the database is away the writer retries at its own pace, not at every request.
    if writer is not None and batch_waiting and not buffer.failing:
        writer.wake.set()


def _start_writer() -> _Writer | None:
    """The writer thread, started now unless the app writes only on `flush()` (tests)."""
    global _writer
    interval = _current_buffer().flush_seconds
    if interval <= 0:
        return None
    with _writer_lock:
        if _writer is None or _writer.pid != os.getpid():
            _writer = _Writer(interval)
            atexit.register(_flush_background_buffers)
    return _writer


def pending_count() -> int:
    """How many events wait for the database."""
    return len(_current_buffer())


def flush() -> int:
    """Write the current app's pending events now (every app's outside an app context);
    returns how many were written."""
    if has_app_context():
        return _current_buffer().flush()
    return flush_all()


def flush_all() -> int:
    """Write every app's pending events."""
    return _flush_buffers(_live_buffers())


def _flush_background_buffers() -> int:
    # The writer's work (and the last of it at exit). An app that writes only on flush()
    # (tests) is left to its own flushes.
    return _flush_buffers(buffer for buffer in _live_buffers() if buffer.flush_seconds > 0)


def _flush_buffers(buffers: Iterable[UsageBuffer]) -> int:
    written = 0
    for buffer in buffers:
        try:
            written += buffer.flush()
        except Exception:  # the writer thread must survive anything one flush does
            log.exception("usage: flushing failed")
    return written
