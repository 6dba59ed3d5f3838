"""The reply bus on its real transports: Redis pub/sub and PostgreSQL LISTEN/NOTIFY deliver a
reply's pieces in order to that reply's subscribers only, hand `follow` and `stop` to the
process's runs, and carry a piece of the worst-case size within NOTIFY's payload limit."""

from __future__ import annotations

import queue
import secrets
from collections.abc import Iterator

import pytest

from tests.support.cluster import (
    POSTGRES_ADMIN_URL,
    REDIS_URL,
    postgres_answers,
    redis_answers,
    require_service,
)
from webapp.services.reply_bus import (
    MAX_PIECE_CHARS,
    BusMessage,
    PostgresReplyBus,
    RedisReplyBus,
    ReplyBus,
    make_bus,
    text_messages,
)

WAIT = 20.0


def test_messages_round_trip_and_garbage_is_ignored() -> None:
    message = BusMessage(7, "text", 12, 'é "quoted"\n\x00')
    assert BusMessage.decode(message.encode()) == message
    assert BusMessage.decode("not json") is None
    assert BusMessage.decode('{"r": "x"}') is None


def test_long_text_is_cut_into_pieces_with_contiguous_offsets() -> None:
    text = "x" * (2 * MAX_PIECE_CHARS + 5)
    pieces = text_messages(3, 100, text)
    assert [piece.offset for piece in pieces] == [
        100,
        100 + MAX_PIECE_CHARS,
        100 + 2 * MAX_PIECE_CHARS,
    ]
    assert "".join(piece.text for piece in pieces) == text
    assert text_messages(3, 0, "") == []


def test_the_configuration_chooses_the_bus() -> None:
    sqlite, postgres = "sqlite:///x.db", "postgresql://u@127.0.0.1/db"
    assert make_bus("auto", database_url=sqlite, redis_url=None, prefix="p") is None
    assert isinstance(
        make_bus("auto", database_url=postgres, redis_url=None, prefix="p"), PostgresReplyBus
    )
    assert isinstance(
        make_bus("auto", database_url=postgres, redis_url=REDIS_URL, prefix="p"), RedisReplyBus
    )
    assert make_bus("none", database_url=postgres, redis_url=REDIS_URL, prefix="p") is None


@pytest.fixture(params=["redis", "postgres"])
def bus(request: pytest.FixtureRequest) -> Iterator[ReplyBus]:
    if request.param == "redis":
        require_service(redis_answers(), "Redis is not answering on 127.0.0.1:6379")
        made: ReplyBus = RedisReplyBus(REDIS_URL, f"modeldesk-test-{secrets.token_hex(6)}:replies")
    else:
        require_service(postgres_answers(), "PostgreSQL is not answering on 127.0.0.1:5432")
        made = PostgresReplyBus(POSTGRES_ADMIN_URL)
    yield made
    made.close()


def take(inbox: queue.SimpleQueue[BusMessage]) -> BusMessage:
    return inbox.get(timeout=WAIT)


def test_a_replys_subscribers_get_its_pieces_in_order_and_no_other_replys(bus: ReplyBus) -> None:
    reply_id = secrets.randbelow(1 << 30)
    mine, theirs = bus.subscribe(reply_id), bus.subscribe(reply_id + 1)
    assert bus.wait_ready(WAIT)
    worst_case = "\x01" * MAX_PIECE_CHARS  # six bytes each in JSON: the largest payload

    bus.publish(
        BusMessage(reply_id + 1, "text", 0, "not mine"),
        *text_messages(reply_id, 0, "first " + worst_case),
        BusMessage(reply_id, "end", 6 + MAX_PIECE_CHARS),
    )

    received = [take(mine), take(mine), take(mine)]
    assert [m.kind for m in received] == ["text", "text", "end"]
    assert "".join(m.text for m in received) == "first " + worst_case
    assert take(theirs).text == "not mine"
    bus.unsubscribe(reply_id, mine)
    bus.publish(BusMessage(reply_id, "text", 0, "after"), BusMessage(reply_id + 1, "end"))
    assert take(theirs).kind == "end"
    assert mine.empty()


def test_follow_and_stop_go_to_the_runs_of_every_process(bus: ReplyBus) -> None:
    heard: queue.SimpleQueue[BusMessage] = queue.SimpleQueue()
    bus.on_control(heard.put)
    assert bus.wait_ready(WAIT)

    bus.publish(BusMessage(5, "follow"), BusMessage(5, "stop"))

    assert [take(heard).kind, take(heard).kind] == ["follow", "stop"]
