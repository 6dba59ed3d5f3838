"""Following a reply, from its first character, wherever it runs.

A page served by the process writing the reply follows its `ReplyRun` in memory
(`follow_here`); a page served by another worker or instance follows it through the reply bus,
or on SQLite without Redis through the reply's checkpoints in the database
(`follow_elsewhere`). Stop pressed in a page of another process goes through the database and
the bus (`request_stop_elsewhere`).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Generator
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from webapp.models import ChatMessage
from webapp.models.types import utcnow
from webapp.services.replies import ReplyDelta, ReplyEnd, ReplyEvent, ReplyHeartbeat
from webapp.services.reply_bus import BusMessage, ReplyBus
from webapp.services.reply_states import settle_abandoned_statement

if TYPE_CHECKING:
    from webapp.services.reply_runs import ReplyRun

ReplyEvents = Generator[ReplyEvent, None, None]

LIVE_STATUSES = frozenset({"pending", "streaming"})
# How often a page following a reply from another process reads its progress in the
# database: without a bus that is how the text arrives; with one, a safety net.
POLL_SECONDS = 0.5
POLL_SECONDS_WITH_BUS = 2.0
# A follower whose first request to follow went unanswered asks again, at most this often.
FOLLOW_AGAIN_SECONDS = 2.0
# How long a follower waits for this process's bus listener before asking to follow.
BUS_READY_SECONDS = 2.0
# How often a follower checks whether the reply's writer died (it is then settled).
SETTLE_CHECK_SECONDS = 15.0


def follow_here(run: ReplyRun, heartbeat_seconds: float) -> ReplyEvents:
    """A reply this process writes, from its first character, live."""
    seen = 0
    while True:
        pieces, ended = run.changes(seen, heartbeat_seconds)
        if pieces:
            seen += len(pieces)
            yield ReplyDelta("".join(pieces))
        elif ended is not None:
            yield ReplyEnd(ended)
            return
        else:
            yield ReplyHeartbeat()


def follow_elsewhere(
    message_id: int,
    *,
    engine: Engine,
    bus: ReplyBus | None,
    heartbeat_seconds: float,
    settle_after: timedelta,
    clock: Callable[[], float] = time.monotonic,
) -> ReplyEvents:
    """A reply another process writes, from its first character: what its last checkpoint
    saved, then every piece the writer sends over the bus (each with its offset, so nothing
    is shown twice or skipped), or without a bus the checkpoints as they are saved. A reply
    whose writer stopped writing long ago (its process died) is settled as incomplete."""
    inbox = bus.subscribe(message_id) if bus is not None else None
    poll_every = POLL_SECONDS_WITH_BUS if bus is not None else POLL_SECONDS
    shown = 0
    asked = -FOLLOW_AGAIN_SECONDS

    def ask_to_follow() -> None:
        nonlocal asked
        if bus is not None and clock() - asked >= FOLLOW_AGAIN_SECONDS:
            asked = clock()
            bus.publish(BusMessage(message_id, "follow"))

    try:
        if bus is not None:
            bus.wait_ready(BUS_READY_SECONDS)  # or the writer's answer could go unheard
        ask_to_follow()
        next_poll = next_settle = clock()
        while True:
            if clock() >= next_poll:
                next_poll = clock() + poll_every
                settle = clock() >= next_settle
                if settle:
                    next_settle = clock() + SETTLE_CHECK_SECONDS
                status, more = _progress(
                    engine, message_id, shown, settle_after if settle else None
                )
                if more:
                    shown += len(more)
                    yield ReplyDelta(more)
                if status not in LIVE_STATUSES:
                    ended = _saved(engine, message_id)
                    if ended is not None:
                        yield ReplyEnd(ended)
                    return
            wait = min(heartbeat_seconds, max(0.0, next_poll - clock()))
            message = _next_message(inbox, wait)
            if message is None:
                yield ReplyHeartbeat()
            elif message.kind == "end":
                next_poll = clock()
            elif message.offset > shown:  # a piece after a gap: the writer's answer was lost
                ask_to_follow()
            elif shown < message.offset + len(message.text):
                piece = message.text[shown - message.offset :]
                shown += len(piece)
                yield ReplyDelta(piece)
    finally:
        if bus is not None and inbox is not None:
            bus.unsubscribe(message_id, inbox)


def _next_message(inbox: queue.SimpleQueue[BusMessage] | None, wait: float) -> BusMessage | None:
    if inbox is None:
        time.sleep(wait)
        return None
    try:
        return inbox.get(timeout=wait)
    except queue.Empty:
        return None


def _progress(
    engine: Engine, message_id: int, shown: int, settle_after: timedelta | None = None
) -> tuple[str | None, str]:
    """The reply's status and its saved text after the first `shown` characters. With
    `settle_after`, a reply still "streaming" that nothing has written to for that long
    (its process died) is settled as incomplete first."""
    if settle_after is not None:
        with engine.begin() as connection:
            connection.execute(
                settle_abandoned_statement(settle_after, ChatMessage.id == message_id)
            )
    query = select(ChatMessage.status, func.substr(ChatMessage.content, shown + 1)).where(
        ChatMessage.id == message_id
    )
    with engine.connect() as connection:
        row = connection.execute(query).first()
    if row is None:  # deleted with its conversation
        return None, ""
    return row[0], row[1] or ""


def _saved(engine: Engine, message_id: int) -> ChatMessage | None:
    with Session(engine, expire_on_commit=False) as session:
        return session.get(ChatMessage, message_id)


def request_stop_elsewhere(engine: Engine, bus: ReplyBus | None, message_id: int) -> bool:
    """Stop pressed for a reply another process writes: say so in the database (which that
    process checks) and on the bus (which it hears at once). False, saying nothing, when the
    reply is not being written (any more)."""
    with engine.begin() as connection:
        flagged = connection.execute(
            update(ChatMessage)
            .where(ChatMessage.id == message_id, ChatMessage.status == "streaming")
            .values(stop_requested_at=utcnow())
        ).rowcount
    if not flagged:
        return False
    if bus is not None:
        bus.publish(BusMessage(message_id, "stop"))
    return True


def wait_until_saved(engine: Engine, message_id: int, timeout: float) -> bool:
    """Poll until the reply has left "streaming" (or `timeout` passes)."""
    deadline = time.monotonic() + timeout
    while True:
        status, _ = _progress(engine, message_id, 1 << 30)
        if status not in LIVE_STATUSES or time.monotonic() >= deadline:
            return status not in LIVE_STATUSES
        time.sleep(0.1)
