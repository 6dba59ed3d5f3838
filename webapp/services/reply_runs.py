"""Replies that belong to the server: a reply runs to its end whoever watches it.

The stream request that claims a pending reply starts a `ReplyRun`: a background thread of
this process drives the reply (`replies.ReplyStream`: provider call, limits, recording) and
keeps its text in memory. Pages only follow it. A page served by this process follows the run
itself (`follow_here`); a page served by another worker or instance follows it through the
reply bus, or on SQLite without Redis through the reply's checkpoints in the database
(`follow_elsewhere`; both in `reply_following`). A page that goes away costs the reply
nothing; Stop is an explicit request (`stop`) that reaches the run wherever it is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from flask import Flask, current_app
from sqlalchemy import ColumnElement, Engine, select

from webapp.config import ConfigError
from webapp.extensions import db
from webapp.llm import results as codes
from webapp.llm.pump import in_background
from webapp.models import ChatMessage, Conversation
from webapp.services.conversations import find_message
from webapp.services.replies import EndedReply, ReplyDelta, ReplyEnd, ReplyStream, open_reply
from webapp.services.reply_bus import BusMessage, ReplyBus, make_bus, text_messages
from webapp.services.reply_following import (
    LIVE_STATUSES,
    ReplyEvents,
    follow_elsewhere,
    follow_here,
    request_stop_elsewhere,
    wait_until_saved,
)
from webapp.services.reply_states import SERVER_ERROR_TEXT, abandoned_after, cancel_pending
from webapp.services.users import SessionUser, signed_in_user

log = logging.getLogger(__name__)

# How often the watchdog looks in the database for a Stop pressed in another process: often
# without a bus (the only way it hears), now and then with one (in case a message was lost).
STOP_CHECK_SECONDS = 1.0
STOP_CHECK_SECONDS_WITH_BUS = 5.0
# How often the watchdog looks for replies past their time limit.
WATCHDOG_SECONDS = 0.25
# How long Stop waits for the reply to be saved before answering with it as it is.
STOP_WAIT_SECONDS = 5.0


class ReplyRun:
    """One reply written by this process: its text so far, its end, and who follows it."""

    def __init__(
        self,
        message_id: int,
        reply: ReplyStream,
        *,
        bus: ReplyBus | None,
        on_end: Callable[[ReplyRun], None],
        owner: int,
    ) -> None:
        self.message_id = message_id
        self.owner = owner
        self._reply = reply
        self._bus = bus
        self._on_end = on_end
        self._changed = threading.Condition()
        # A continuation starts with the text it continues: followers see it first.
        self._pieces: list[str] = [reply.prefix] if reply.prefix else []
        self._length = len(reply.prefix)
        self.ended: ChatMessage | None = None
        self._done = threading.Event()
        self._followed_elsewhere = False

    def start(self) -> None:
        in_background(self._drive)

    def stop(self) -> None:
        """Stop pressed: the provider call is cancelled at once, the text so far is kept."""
        self._reply.request_stop()

    def check_deadline(self) -> None:
        """Past the reply's time limit, cut it (called by the process's watchdog)."""
        self._reply.check_deadline()

    def wait(self, timeout: float) -> bool:
        """True once the reply has ended and its outcome is recorded."""
        return self._done.wait(timeout)

    def follow_elsewhere(self) -> None:
        """A page in another process follows: send it the text so far, then every piece."""
        if self._bus is None:
            return
        with self._changed:
            self._followed_elsewhere = True
            messages = text_messages(self.message_id, 0, "".join(self._pieces))
            if self.ended is not None:
                messages.append(BusMessage(self.message_id, "end", self._length))
            if messages:
                self._bus.publish(*messages)

    def changes(self, seen: int, timeout: float) -> tuple[list[str], ChatMessage | None]:
        """The pieces after the first `seen`, waiting up to `timeout` for some; the end
        comes with no pieces, once every piece has been taken."""
        with self._changed:
            if len(self._pieces) == seen and self.ended is None:
                self._changed.wait(timeout)
            pieces = self._pieces[seen:]
            return pieces, (self.ended if not pieces else None)

    def _drive(self) -> None:
        try:
            for event in self._reply:
                if isinstance(event, ReplyDelta):
                    self._add(event.text)
                elif isinstance(event, ReplyEnd):
                    self._end(event.message)
        except Exception:
            log.exception("reply %s: its run failed", self.message_id)
        finally:
            try:
                self._reply.close()
            except Exception:
                log.exception("reply %s: could not be closed", self.message_id)
            if self.ended is None:  # whatever happened, followers get an end
                self._end(self._reply.saved or _lost(self.message_id))
            self._done.set()
            self._on_end(self)

    def _add(self, text: str) -> None:
        with self._changed:
            offset = self._length
            self._pieces.append(text)
            self._length += len(text)
            if self._followed_elsewhere and self._bus is not None:
                self._bus.publish(*text_messages(self.message_id, offset, text))
            self._changed.notify_all()

    def _end(self, message: ChatMessage) -> None:
        with self._changed:
            self.ended = message
            if self._followed_elsewhere and self._bus is not None:
                self._bus.publish(BusMessage(self.message_id, "end", self._length))
            self._changed.notify_all()


class ReplyRuns:
    """The replies this process is writing, by message id."""

    def __init__(self, bus: ReplyBus | None) -> None:
        self.bus = bus
        self._lock = threading.Lock()
        self._runs: dict[int, ReplyRun] = {}
        self._answering = False
        self._watching = False
        self._closed = threading.Event()

    def start(self, message_id: int, reply: ReplyStream, engine: Engine, *, owner: int) -> ReplyRun:
        run = ReplyRun(message_id, reply, bus=self.bus, on_end=self._forget, owner=owner)
        with self._lock:
            self._runs[message_id] = run
        self._answer_the_bus()
        self._watch(engine)
        run.start()
        return run

    def get(self, message_id: int) -> ReplyRun | None:
        with self._lock:
            return self._runs.get(message_id)

    def running(self) -> list[ReplyRun]:
        with self._lock:
            return list(self._runs.values())

    def finish(self, timeout: float) -> list[int]:
        """Wait up to `timeout` for every run to end, then stop the rest and wait for them
        to be saved (a worker shutting down, a test's teardown). Returns the stopped ids."""
        deadline = time.monotonic() + timeout
        for run in self.running():
            run.wait(max(0.0, deadline - time.monotonic()))
        stopped = self.running()
        for run in stopped:
            run.stop()
        for run in stopped:
            run.wait(STOP_WAIT_SECONDS)
        return [run.message_id for run in stopped]

    def close(self) -> None:
        self._closed.set()
        if self.bus is not None:
            self.bus.close()

    def _watch(self, engine: Engine) -> None:
        """One watchdog thread per process: it cuts replies past their time limit, and stops
        those whose Stop was pressed in a page of another process (one query for all)."""
        with self._lock:
            if self._watching:
                return
            self._watching = True
        threading.Thread(
            target=self._watch_forever, args=(engine,), name="reply-watchdog", daemon=True
        ).start()

    def _watch_forever(self, engine: Engine) -> None:
        check_every = STOP_CHECK_SECONDS_WITH_BUS if self.bus else STOP_CHECK_SECONDS
        next_check = time.monotonic() + check_every
        while not self._closed.wait(WATCHDOG_SECONDS):
            running = self.running()
            for run in running:
                run.check_deadline()
            if running and time.monotonic() >= next_check:
                next_check = time.monotonic() + check_every
                for message_id in _stop_requested(engine, [run.message_id for run in running]):
                    run = self.get(message_id)
                    if run is not None:
                        run.stop()

    def _forget(self, run: ReplyRun) -> None:
        with self._lock:
            if self._runs.get(run.message_id) is run:
                del self._runs[run.message_id]

    def _answer_the_bus(self) -> None:
        if self.bus is None or self._answering:
            return
        self._answering = True
        self.bus.on_control(self._control)

    def _control(self, message: BusMessage) -> None:
        run = self.get(message.reply_id)
        if run is None:
            return
        if message.kind == "follow":
            run.follow_elsewhere()
        elif message.kind == "stop":
            run.stop()


def _lost(message_id: int) -> ChatMessage:
    """The end shown when a reply's outcome could not even be kept in memory."""
    return ChatMessage(
        id=message_id,
        role="assistant",
        status="error",
        content="",
        details={},
        error_code=codes.INTERNAL_ERROR,
        error_text=SERVER_ERROR_TEXT,
    )


def _stop_requested(engine: Engine, message_ids: list[int]) -> list[int]:
    """Which of these replies had Stop pressed in another process, or are gone (deleted with
    their conversation or user there, the stop that came first unheard in time)."""
    query = select(ChatMessage.id).where(
        ChatMessage.id.in_(message_ids), ChatMessage.stop_requested_at.is_(None)
    )
    try:
        with engine.connect() as connection:
            wanted = set(connection.scalars(query))
    except Exception as error:  # the database away: check again later
        log.warning("could not check replies for a stop: %s", error)
        return []
    return [message_id for message_id in message_ids if message_id not in wanted]


# --- what the views call ------------------------------------------------------------------------

BUS_CHOICES = ("auto", "redis", "postgres", "none")


def init_reply_runs(app: Flask) -> None:
    """The process's runs and its reply bus (opened only when first needed)."""
    config = app.config
    choice = str(config.get("REPLY_BUS", "auto")).strip().lower()
    if choice not in BUS_CHOICES:
        raise ConfigError(f"MODELDESK_REPLY_BUS must be one of {', '.join(BUS_CHOICES)}")
    if choice == "redis" and not config.get("REDIS_URL"):
        raise ConfigError("MODELDESK_REPLY_BUS=redis needs REDIS_URL")
    bus = make_bus(
        choice,
        database_url=config["SQLALCHEMY_DATABASE_URI"],
        redis_url=config.get("REDIS_URL"),
        prefix=config["REDIS_KEY_PREFIX"],
    )
    app.extensions["reply_runs"] = ReplyRuns(bus)


def runs() -> ReplyRuns:
    return current_app.extensions["reply_runs"]


@dataclass(frozen=True)
class Following:
    """A page's view of a reply: its events, and how they reach it ("started" here, "here",
    or from another process via "redis", "postgres" or "database")."""

    events: ReplyEvents
    how: str


class ReplyNotFound(LookupError):
    """No such message, or not the user's."""


class SessionEnded(PermissionError):
    """The session no longer counts (signed out elsewhere, password changed, disabled)."""


def watch(message_id: int, signed_in: SessionUser) -> Following | None:
    """The session user's reply `message_id` for a page, from its first character, or None
    when it is over (the page then shows it as saved). A pending reply is started here, in
    this process — claimed in the one statement that also checks the session and that the
    reply is theirs; one already running is followed wherever it runs. Raises ReplyNotFound
    for anyone else's, SessionEnded when the session no longer counts."""
    heartbeat = current_app.extensions["reply_limits"].heartbeat_seconds
    run = runs().get(message_id)
    if run is None:
        reply = open_reply(message_id, signed_in)
        if isinstance(reply, EndedReply):
            return Following(_ended(reply), "refused")
        if reply is not None:
            run = runs().start(message_id, reply, db.engine, owner=signed_in.id)
            return Following(follow_here(run, heartbeat), "started")
    # Not started here (a reload, another tab, a reply over): the session is checked alone.
    if signed_in_user(signed_in) is None:
        raise SessionEnded(message_id)
    user_id = signed_in.id
    message = find_message(user_id, message_id)
    if message is None or (run is not None and run.owner != user_id):
        raise ReplyNotFound(message_id)
    status = message.status
    # Nothing below needs the request's session: give its connection back for the stream.
    db.session.close()
    run = run or runs().get(message_id)  # claimed by another request of this process
    if run is not None:
        return Following(follow_here(run, heartbeat), "here")
    if status != "streaming":
        return None
    bus = runs().bus
    events = follow_elsewhere(
        message_id,
        engine=db.engine,
        bus=bus,
        heartbeat_seconds=heartbeat,
        settle_after=abandoned_after(current_app.config),
    )
    return Following(events, bus.name if bus is not None else "database")


def _ended(reply: EndedReply) -> ReplyEvents:
    yield from reply


def stop_unfinished(where: ColumnElement[bool]) -> None:
    """Stop the replies pending or being written in the conversations `where` picks (a
    condition on `Conversation`), as `stop_replies` does: before those conversations are
    deleted, so that no provider call goes on writing a reply nobody can see any more."""
    unfinished = db.session.scalars(
        select(ChatMessage.id)
        .join(Conversation, ChatMessage.conversation_id == Conversation.id)
        .where(where, ChatMessage.status.in_(LIVE_STATUSES))
    ).all()
    stop_replies(unfinished)


def stop(message_id: int) -> ChatMessage | None:
    """Stop pressed, in whichever tab or process: the reply ends as stopped, keeping its
    text, and its provider call is closed. Returns it once it is saved (or as it is after a
    few seconds, when the process writing it does not answer); None when it was deleted
    meanwhile."""
    stop_replies([message_id])
    return db.session.get(ChatMessage, message_id, populate_existing=True)


def stop_replies(message_ids: Sequence[int]) -> None:
    """Stop each reply wherever it is: a pending one at once, one this process writes through
    its run, one another process writes through the database and the bus. Every stop is
    sent first, then all are waited for together, STOP_WAIT_SECONDS at most."""
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    waits: list[Callable[[float], object]] = []
    for message_id in message_ids:
        if cancel_pending(message_id):
            continue
        run = runs().get(message_id)
        if run is not None:
            run.stop()
            waits.append(run.wait)
        elif request_stop_elsewhere(db.engine, runs().bus, message_id):
            # Claimed elsewhere, perhaps since it was read (one that ended meanwhile, or was
            # never claimed, is left as it is).
            waits.append(partial(wait_until_saved, db.engine, message_id))
    for wait in waits:
        wait(max(0.0, deadline - time.monotonic()))
