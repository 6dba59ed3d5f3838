"""The reply bus: how a reply written by one process reaches a page served by another.

A reply runs in the process that claimed it (see `reply_runs`). A page served by another
gunicorn worker or instance follows it through this bus: it asks the writer to `follow`, the
writer answers with the text so far and then every new piece, each with its offset, and an
`end` once the outcome is saved; Stop pressed there is a `stop` message. Nothing is sent for
a reply nobody follows from elsewhere, so the bus costs a reply nothing until then.

One channel carries every reply's messages (a process keeps the subscribers of each reply
itself): PostgreSQL `LISTEN/NOTIFY` when the database is PostgreSQL, Redis pub/sub when
`REDIS_URL` is set (and preferred: it keeps the database's connections for queries). On SQLite
without Redis there is no bus: another process's page follows the reply's checkpoints in the
database instead (see `reply_following.follow_elsewhere`).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import redis
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

POSTGRES_CHANNEL = "modeldesk_replies"
RECONNECT_SECONDS = 1.0
# A NOTIFY payload must stay under 8,000 bytes: pieces of text are sent at most this long
# (a character escaped in JSON takes at most 6 bytes).
MAX_PIECE_CHARS = 1_000
LISTEN_POLL_SECONDS = 0.5
# After a failed publish, how long the bus is treated as away (nothing is sent meanwhile).
AWAY_SECONDS = 5.0


@dataclass(frozen=True)
class BusMessage:
    """`follow` (a page elsewhere wants the reply), `stop`, `text` (a piece at `offset`) or
    `end` (the outcome is saved)."""

    reply_id: int
    kind: str
    offset: int = 0
    text: str = ""

    def encode(self) -> str:
        return json.dumps(
            {"r": self.reply_id, "k": self.kind, "o": self.offset, "t": self.text},
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, payload: str | bytes) -> BusMessage | None:
        try:
            fields = json.loads(payload)
            return cls(int(fields["r"]), str(fields["k"]), int(fields["o"]), str(fields["t"]))
        except (ValueError, KeyError, TypeError):
            return None


def text_messages(reply_id: int, offset: int, text: str) -> list[BusMessage]:
    """`text` as bus messages no longer than a NOTIFY payload allows."""
    return [
        BusMessage(reply_id, "text", offset + start, text[start : start + MAX_PIECE_CHARS])
        for start in range(0, len(text), MAX_PIECE_CHARS)
    ]


class ReplyBus:
    """Publishes and delivers bus messages; a transport subclass sends and listens.

    `text` and `end` messages go to the queues of the reply's subscribers in this process;
    `follow` and `stop` go to `on_control` (the process's runs, which answer for the replies
    they write). The listener starts with the first subscription or control handler, so a
    process that never needs the bus opens no connection for it.
    """

    name = "bus"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[int, list[queue.SimpleQueue[BusMessage]]] = {}
        self._on_control: Callable[[BusMessage], None] | None = None
        self._listening = False
        self._closed = threading.Event()
        self._ready = threading.Event()
        self._away_until = 0.0

    def publish(self, *messages: BusMessage) -> None:
        """Send, in order. A transport that is away costs a log line and then nothing for a
        few seconds (the run publishing must not wait on it piece after piece): the database
        is the fallback — followers read the checkpoints, the writer checks for a stop."""
        if time.monotonic() < self._away_until:
            return
        try:
            self._send([message.encode() for message in messages])
        except Exception as error:  # any transport failure is logged, not raised
            self._away_until = time.monotonic() + AWAY_SECONDS
            log.warning("reply bus: could not publish (retrying in %gs): %s", AWAY_SECONDS, error)

    def subscribe(self, reply_id: int) -> queue.SimpleQueue[BusMessage]:
        inbox: queue.SimpleQueue[BusMessage] = queue.SimpleQueue()
        with self._lock:
            self._subscribers.setdefault(reply_id, []).append(inbox)
        self._listen()
        return inbox

    def unsubscribe(self, reply_id: int, inbox: queue.SimpleQueue[BusMessage]) -> None:
        with self._lock:
            inboxes = self._subscribers.get(reply_id, [])
            if inbox in inboxes:
                inboxes.remove(inbox)
            if not inboxes:
                self._subscribers.pop(reply_id, None)

    def on_control(self, handler: Callable[[BusMessage], None]) -> None:
        self._on_control = handler
        self._listen()

    def close(self) -> None:
        self._closed.set()

    def wait_ready(self, timeout: float) -> bool:
        """True once the listener is receiving (tests wait for it before publishing)."""
        return self._ready.wait(timeout)

    def _listen(self) -> None:
        with self._lock:
            if self._listening:
                return
            self._listening = True
        threading.Thread(target=self._listen_forever, name="reply-bus", daemon=True).start()

    def _listen_forever(self) -> None:
        while not self._closed.is_set():
            try:
                self._receive(self._deliver)
            except Exception as error:  # reconnect whatever broke
                self._ready.clear()
                if self._closed.is_set():
                    return
                log.warning("reply bus interrupted (%s); reconnecting", error)
                self._closed.wait(RECONNECT_SECONDS)

    def _deliver(self, payload: str | bytes) -> None:
        message = BusMessage.decode(payload)
        if message is None:
            return
        if message.kind in ("follow", "stop"):
            if self._on_control is not None:
                self._on_control(message)
            return
        with self._lock:
            inboxes = list(self._subscribers.get(message.reply_id, ()))
        for inbox in inboxes:
            inbox.put(message)

    # --- transports ---

    def _send(self, payloads: list[str]) -> None:
        raise NotImplementedError

    def _receive(self, deliver: Callable[[str | bytes], None]) -> None:
        """Listen until closed, calling `deliver` per payload; set `_ready` once listening."""
        raise NotImplementedError


class RedisReplyBus(ReplyBus):
    name = "redis"

    def __init__(self, url: str, channel: str) -> None:
        super().__init__()
        self._channel = channel
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        self._listener = redis.Redis.from_url(url, socket_connect_timeout=1)

    def _send(self, payloads: list[str]) -> None:
        if len(payloads) == 1:
            self._redis.publish(self._channel, payloads[0])
            return
        pipeline = self._redis.pipeline(transaction=False)
        for payload in payloads:
            pipeline.publish(self._channel, payload)
        pipeline.execute()

    def _receive(self, deliver: Callable[[str | bytes], None]) -> None:
        pubsub = self._listener.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self._channel)
            while not self._closed.is_set():
                message = pubsub.get_message(timeout=LISTEN_POLL_SECONDS)
                if pubsub.subscribed:
                    self._ready.set()
                if message is not None and message["type"] == "message":
                    deliver(message["data"])
        finally:
            pubsub.close()


class PostgresReplyBus(ReplyBus):
    """LISTEN on a connection of its own; NOTIFY through another, one message at a time (a
    lock keeps a process's messages in order)."""

    name = "postgres"

    def __init__(self, database_url: str) -> None:
        super().__init__()
        self._conninfo = (
            make_url(database_url)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )
        self._send_lock = threading.Lock()
        self._sender: psycopg.Connection[Any] | None = None

    def _send(self, payloads: list[str]) -> None:
        with self._send_lock:
            try:
                self._notify(payloads)
            except psycopg.OperationalError:  # a connection the server dropped: once more
                if self._sender is not None:
                    self._sender.close()
                self._sender = None
                self._notify(payloads)

    def _notify(self, payloads: list[str]) -> None:
        if self._sender is None or self._sender.closed:
            self._sender = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=2)
        with self._sender.cursor() as cursor:
            for payload in payloads:
                cursor.execute("SELECT pg_notify(%s, %s)", (POSTGRES_CHANNEL, payload))

    def _receive(self, deliver: Callable[[str | bytes], None]) -> None:
        with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=2) as connection:
            connection.execute(f"LISTEN {POSTGRES_CHANNEL}")
            self._ready.set()
            while not self._closed.is_set():
                for notify in connection.notifies(timeout=LISTEN_POLL_SECONDS):
                    deliver(notify.payload)

    def close(self) -> None:
        super().close()
        with self._send_lock:
            if self._sender is not None:
                self._sender.close()
                self._sender = None


def make_bus(
    choice: str, *, database_url: str, redis_url: str | None, prefix: str
) -> ReplyBus | None:
    """The bus the configuration asks for: "auto" is Redis when `redis_url` is set, else
    PostgreSQL when the database is, else none."""
    if choice == "auto":
        if redis_url:
            choice = "redis"
        elif make_url(database_url).get_backend_name() == "postgresql":
            choice = "postgres"
        else:
            choice = "none"
    if choice == "redis" and redis_url:
        return RedisReplyBus(redis_url, f"{prefix}:replies")
    if choice == "postgres":
        return PostgresReplyBus(database_url)
    return None
