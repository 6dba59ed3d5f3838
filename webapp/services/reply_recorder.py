"""The reply recorder: collects a reply as it streams and writes it to its chat message.

Every write goes through a short session of its own (the request's session is closed while a
reply streams): a checkpoint now and then appends the new text, and the outcome (complete,
error, incomplete, stopped) is written once, with a usage event recorded alongside. A database
that is away when the reply ends does not cost the reader the reply: the outcome is shown from
memory and saved by a background retry (bounded) when the database answers again.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, Update, bindparam, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from webapp.llm import results as codes
from webapp.llm.results import Result
from webapp.llm.run import StreamEvent
from webapp.models import ChatMessage
from webapp.models.chat import CHAT_MESSAGES as MESSAGES
from webapp.models.types import utcnow
from webapp.models.validation import storable
from webapp.services import usage

log = logging.getLogger(__name__)

# A long reply is saved as it grows, one small append at a time: a reload or another process
# sees its text so far (replies followed live get it from memory or the bus instead).
CHECKPOINT_SECONDS = 5.0
# Saving an outcome while the database is away: tries, and the wait before each retry.
SAVE_ATTEMPTS = 30
SAVE_RETRY_SECONDS = 2.0


class ReplyRecorder:
    """Collects a reply as it streams and writes it to its message with its own session.

    The request's session is closed while a reply streams (a connection per open stream
    would drain the pool), so every write here opens a short session on `engine`. A
    checkpoint appends only the text that is new since the last one. A reply that continues
    another starts with its text (`prefix`, already in the message): the outcome keeps it in
    front of what arrives, while `length` and the usage count only the new text. When the
    database does not answer, a checkpoint is skipped and the outcome is kept in memory and saved by
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
        prefix: str = "",
        checkpoint_seconds: float = CHECKPOINT_SECONDS,
        clock: Callable[[], float] = time.perf_counter,
        details: dict[str, Any] | None = None,
        created_at: datetime | None = None,
    ) -> None:
        self.engine = engine
        # The claimed row's creation time: every write is to that row only (SQLite may give a
        # deleted message's id to a new message while this reply still runs).
        self.row = _Row(message_id, created_at)
        # The message's details when the reply was claimed: the outcome's are added to them
        # and saved in the one statement that saves the outcome (None: read them then).
        self.details = details
        self.message_id = message_id
        self.model_name = model_name
        self.preset_name = preset_name
        self.call = call
        self.prefix = prefix
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
        return storable(self.prefix + self.new_text)

    @property
    def new_text(self) -> str:
        return "".join(self.pieces)

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
            status="incomplete" if self.content else "error",
            error_code=result.code,
            error_text=storable("; ".join(result.errors)) or None,
            details=details,
            **values,
        )

    def stop(self) -> ChatMessage:
        """Stop pressed (or the server shutting down): keep what arrived."""
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
        status = "incomplete" if self.content else "error"
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
                    update(MESSAGES)
                    .where(*self.row.conditions(), MESSAGES.c.status == "streaming")
                    .values(content=MESSAGES.c.content + new_text, updated_at=utcnow())
                )
        except SQLAlchemyError as error:  # the database is away: the final save catches up
            log.warning("checkpoint of reply %s skipped: %s", self.message_id, error)
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
            base_details=self.details,
            row=self.row,
        )
        try:
            message = outcome.write(self.engine, self.message_id)
        except SQLAlchemyError as error:  # away, or its pool exhausted: retry later
            log.warning(
                "reply %s could not be saved now (%s); retrying in the background",
                self.message_id,
                error,
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
                reply=storable(self.new_text),
                ttft_ms=values.get("ttft_ms"),
                total_ms=values["total_ms"],
            )
        )
        return message


@dataclass(frozen=True)
class _Row:
    """A message row, told apart from a later one given the same id."""

    message_id: int
    created_at: datetime | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        conditions = [MESSAGES.c.id == self.message_id]
        if self.created_at is not None:
            conditions.append(MESSAGES.c.created_at == self.created_at)
        return conditions


@dataclass(frozen=True)
class _Outcome:
    """How a reply ended, ready to be written (now, or later by a retry)."""

    status: str
    content: str
    model_name: str | None
    preset_name: str | None
    details: dict[str, Any]
    values: dict[str, Any]
    base_details: dict[str, Any] | None = None
    row: _Row | None = None

    def write(self, engine: Engine, message_id: int) -> ChatMessage:
        if self.base_details is None:
            return self._read_and_write(engine, message_id)
        # One statement: the details to merge with are known since the claim. Core, not the
        # ORM, and built once per shape (`_outcome_statement`): the ORM's bulk-update
        # machinery, or building the statement each time, cost more CPU than the statement.
        # The message shown is built from the row it returns.
        row_of = self.row or _Row(message_id)
        new_values = {
            "status": self.status,
            "content": self.content,
            "model_name": self.model_name,
            "preset_name": self.preset_name,
            "details": {**self.base_details, **self.details},
            "updated_at": utcnow(),
            **self.values,
        }
        statement = _outcome_statement(tuple(new_values), row_of.created_at is not None)
        parameters = {
            "row_id": row_of.message_id,
            "row_created_at": row_of.created_at,
            **{f"new_{name}": value for name, value in new_values.items()},
        }
        with engine.begin() as connection:
            row = connection.execute(statement, parameters).first()
        return ChatMessage(**row._mapping) if row is not None else self.unsaved(message_id)

    def _read_and_write(self, engine: Engine, message_id: int) -> ChatMessage:
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


@functools.cache
def _outcome_statement(columns: tuple[str, ...], by_created_at: bool) -> Update:
    """UPDATE … RETURNING of a message's outcome, setting `columns`, for the parameters
    `row_id` (and `row_created_at`) and `new_<column>`."""
    conditions = [MESSAGES.c.id == bindparam("row_id")]
    if by_created_at:
        conditions.append(
            MESSAGES.c.created_at == bindparam("row_created_at", type_=MESSAGES.c.created_at.type)
        )
    values = {name: bindparam(f"new_{name}", type_=MESSAGES.c[name].type) for name in columns}
    return update(MESSAGES).where(*conditions).values(values).returning(*MESSAGES.c)


def _retry_in_background(outcome: _Outcome, engine: Engine, message_id: int) -> None:
    def retry() -> None:
        for _ in range(SAVE_ATTEMPTS):
            time.sleep(SAVE_RETRY_SECONDS)
            try:
                outcome.write(engine, message_id)
            except SQLAlchemyError:
                continue
            log.info("reply %s saved after the database came back", message_id)
            return
        log.error("reply %s could not be saved: the database did not come back", message_id)

    threading.Thread(target=retry, name=f"save-reply-{message_id}", daemon=True).start()
