"""A reply's limits and faults over a real connection: per-user cap, time and size limits,
heartbeats while the provider is silent, a browser leaving mid-silence, and a database that
goes away while a reply streams."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from flask import Flask
from sqlalchemy import delete, event

from tests.support.app import LiveServer, live_app
from tests.support.chat_http import (
    PROMPT,
    deltas_text,
    end_html,
    mock_model,
    mock_provider,
    read_frames,
    send,
    stream,
    stream_outcomes,
    wait_for_status,
)
from tests.support.database import DatabaseOutage
from tests.support.factories import make_model, make_provider
from tests.support.mock_api import mock_reply_pattern
from tests.support.net import SilentUpstream, TcpProxy
from tests.support.users import csrf_token, session_of, signed_in_client
from tests.support.waiting import wait_for
from webapp.extensions import db as _db
from webapp.models import ChatMessage, Conversation, LLMModel
from webapp.services import conversations as chats
from webapp.services import replies, reply_limits, reply_recorder, reply_states

LONG = " ".join(["Replies stream piece by piece over one response."] * 8)


def set_limits(live_server: LiveServer, **limits: Any) -> None:
    live_server.app.extensions["reply_limits"] = reply_limits.ReplyLimits(**limits)


@pytest.fixture
def silent() -> Iterator[SilentUpstream]:
    upstream = SilentUpstream()
    yield upstream
    upstream.stop()


def silent_model(upstream: SilentUpstream) -> LLMModel:
    provider = make_provider(name="Silent", base_url=upstream.url, api_prefix="/v1")
    return make_model(provider, model="quiet", name="Quiet", enabled=True, supports_streaming=True)


class Reader:
    """Reads one reply's SSE frames on a thread, so a test can hold it open."""

    def __init__(self, client: httpx2.Client, message_id: int) -> None:
        self.frames: list[Any] = []
        self._client, self.message_id = client, message_id
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with self._client.stream("GET", f"/messages/{self.message_id}/stream") as response:
            for frame in read_frames(response.iter_lines()):
                self.frames.append(frame)

    def join(self) -> None:
        self._thread.join(timeout=30)
        assert not self._thread.is_alive()


# --- the per-user cap ----------------------------------------------------------------------


def test_one_user_cannot_take_every_stream_slot(
    live_server: LiveServer, member_http: httpx2.Client, admin_http: httpx2.Client
) -> None:
    live_server.app.extensions["user_streams"] = reply_limits.UserStreams(1)
    model = mock_model(mock_provider(live_server, "chunk_delay=0.05"))
    first_id = send(member_http, model, LONG)
    first = Reader(member_http, first_id)
    wait_for_status(first_id, {"streaming"})

    second_id = send(member_http, model, "And this one?")
    started = time.monotonic()
    _, frames = stream(member_http, second_id)

    assert time.monotonic() - started < 10
    assert "Busy" in end_html(frames) and "your limit of 1 reply" in end_html(frames)
    assert wait_for_status(second_id, {"error"}).error_code == "BUSY"
    # Another user is not held back by this one's replies.
    other_id = send(admin_http, model, "Mine?")
    _, other_frames = stream(admin_http, other_id)
    assert "Mock response" in deltas_text(other_frames)
    first.join()
    assert wait_for_status(first_id, {"complete"}).status == "complete"
    # The slot came back when the first reply ended.
    assert wait_for(lambda: live_server.app.extensions["user_streams"].try_acquire(1))


# --- starting replies in turns -------------------------------------------------------------


def test_a_reply_waits_its_turn_to_start_while_the_process_starts_others(
    live_server: LiveServer, member_http: httpx2.Client
) -> None:
    gate = reply_limits.StartGate(1)
    live_server.app.extensions["start_gate"] = gate
    model = mock_model(mock_provider(live_server))
    message_id = send(member_http, model)

    assert gate.acquire(timeout=0)  # another reply is starting: the only place is taken
    reader = Reader(member_http, message_id)
    assert wait_for(lambda: gate.queued == 1)
    assert _db.session.get(ChatMessage, message_id).status == "pending"  # not claimed yet
    gate.release()

    reader.join()
    assert re.fullmatch(mock_reply_pattern(PROMPT), deltas_text(reader.frames))
    assert wait_for_status(message_id, {"complete"}).status == "complete"
    assert gate.queued == 0


def test_a_reply_that_waited_too_long_for_its_turn_is_refused_as_busy(
    live_server: LiveServer, member_http: httpx2.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replies, "START_WAIT_SECONDS", 0.2)
    gate = reply_limits.StartGate(1)
    live_server.app.extensions["start_gate"] = gate
    model = mock_model(mock_provider(live_server))
    message_id = send(member_http, model)

    assert gate.acquire(timeout=0)
    try:
        _, frames = stream(member_http, message_id)
    finally:
        gate.release()

    assert "Busy" in end_html(frames) and "Try again" in end_html(frames)
    assert wait_for_status(message_id, {"error"}).error_code == "BUSY"
    assert gate.queued == 0


def test_starts_wait_in_the_order_they_came() -> None:
    gate = reply_limits.StartGate(2)
    started: list[int] = []
    assert gate.acquire(timeout=0) and gate.acquire(timeout=0)  # both places taken

    def start(number: int) -> None:
        assert gate.acquire(timeout=60)
        started.append(number)
        gate.release()

    threads = []
    for number in range(5):
        thread = threading.Thread(target=start, args=(number,), daemon=True)
        thread.start()
        threads.append(thread)
        assert wait_for(lambda number=number: gate.queued == number + 1)
    gate.release()  # one place: the waiting starts go one at a time
    for thread in threads:
        thread.join(timeout=30)
    gate.release()

    assert started == [0, 1, 2, 3, 4] and gate.queued == 0


def test_a_start_that_waited_too_long_gives_up_its_place_in_line() -> None:
    gate = reply_limits.StartGate(1)
    assert gate.acquire(timeout=0)

    assert not gate.acquire(timeout=0.05)

    assert gate.queued == 0
    gate.release()  # the place goes back, not to the start that gave up
    assert gate.acquire(timeout=0)


# --- time and size limits -------------------------------------------------------------------


def test_a_reply_stops_at_its_size_limit_keeping_what_arrived(
    live_server: LiveServer, member_http: httpx2.Client
) -> None:
    set_limits(live_server, max_chars=50)
    model = mock_model(mock_provider(live_server, "chunk_delay=0.01"))
    message_id = send(member_http, model, LONG)

    _, frames = stream(member_http, message_id)

    assert len(deltas_text(frames)) == 50
    assert "50-character limit" in end_html(frames) and "Incomplete" in end_html(frames)
    saved = wait_for_status(message_id, {"incomplete"})
    assert (len(saved.content), saved.error_code) == (50, "REPLY_LIMIT")
    assert stream_outcomes(live_server) == ["disconnected"]


def test_a_reply_stops_at_its_time_limit_even_while_the_provider_is_silent(
    live_server: LiveServer, member_http: httpx2.Client, silent: SilentUpstream
) -> None:
    set_limits(live_server, max_seconds=0.5, heartbeat_seconds=0.1)
    message_id = send(member_http, silent_model(silent), "Anyone?")

    _, frames = stream(member_http, message_id)

    assert "0.5-second limit" in end_html(frames)
    saved = wait_for_status(message_id, {"incomplete"})
    assert saved.error_code == "REPLY_LIMIT"
    # The provider call was cut, not left waiting for its 60 s read timeout.
    assert wait_for(lambda: silent.closed_at, timeout=10)


# --- heartbeats and a browser leaving mid-silence --------------------------------------------


def test_a_browser_leaving_mid_silence_leaves_the_reply_running_and_stop_ends_it_within_2_s(
    live_server: LiveServer, member_http: httpx2.Client, silent: SilentUpstream
) -> None:
    set_limits(live_server, heartbeat_seconds=0.1)
    message_id = send(member_http, silent_model(silent), "Hello?")

    with member_http.stream("GET", f"/messages/{message_id}/stream") as response:
        lines = response.iter_lines()
        opening = [line for line in (next(lines) for _ in range(5)) if line]
        assert opening == [": reply started", "event: reset", "data: "]
        assert wait_for(lambda: silent.requests == 1)
        assert ": keep-alive" in (next(lines), next(lines))
    # The page is gone (the server noticed at a heartbeat); the reply is not: its provider
    # call stays open.
    assert wait_for(lambda: not live_server.active_requests)
    assert live_server.app.extensions["reply_runs"].get(message_id) is not None
    assert silent.closed_at == []

    headers = {"HX-Request": "true", "X-CSRFToken": csrf_token(member_http)}
    pressed = time.monotonic()
    stopped = member_http.post(f"/messages/{message_id}/stop", headers=headers)

    assert stopped.status_code == 200 and "Stopped" in stopped.text
    assert wait_for(lambda: silent.closed_at, timeout=10)
    assert silent.closed_at[0] - pressed < 2.0
    assert wait_for_status(message_id, {"stopped"}).status == "stopped"


def delete_conversation_of(client: httpx2.Client, message_id: int) -> None:
    conversation_id = _db.session.get(ChatMessage, message_id).conversation_id
    headers = {"HX-Request": "true", "X-CSRFToken": csrf_token(client)}
    deleted = client.post(f"/c/{conversation_id}/delete", headers=headers)
    assert deleted.status_code == 204 and "HX-Location" in deleted.headers
    _db.session.expire_all()
    assert _db.session.get(ChatMessage, message_id) is None


def reply_in_flight(
    live_server: LiveServer, client: httpx2.Client, silent: SilentUpstream
) -> tuple[int, Reader]:
    """A reply waiting on the silent provider, its page following it."""
    set_limits(live_server, heartbeat_seconds=0.1)
    message_id = send(client, silent_model(silent), "Hello?")
    reader = Reader(client, message_id)
    assert wait_for(lambda: silent.requests == 1)
    return message_id, reader


def assert_stopped(
    silent: SilentUpstream, reader: Reader, *, within: float = 10, runs: Any = None
) -> None:
    """The provider call was closed, the run (when given its process's runs) is over, and
    the page following the reply got its end as stopped."""
    assert wait_for(lambda: silent.closed_at, timeout=within)
    if runs is not None:
        assert wait_for(lambda: runs.get(reader.message_id) is None)
    reader.join()
    assert reader.frames[-1].event == "end" and "Stopped" in reader.frames[-1].data


def test_deleting_a_conversation_stops_its_reply_and_the_provider_call(
    live_server: LiveServer, member_http: httpx2.Client, silent: SilentUpstream
) -> None:
    message_id, reader = reply_in_flight(live_server, member_http, silent)

    delete_conversation_of(member_http, message_id)

    assert_stopped(silent, reader, runs=live_server.app.extensions["reply_runs"])


def test_deleting_a_conversation_on_another_worker_stops_the_reply_this_one_writes(
    live_server: LiveServer,
    member_http: httpx2.Client,
    silent: SilentUpstream,
    app: Flask,
    tmp_path: Any,
) -> None:
    message_id, reader = reply_in_flight(live_server, member_http, silent)
    # Another process of the same deployment: its own runs, the same database and secret.
    database_url = app.config["SQLALCHEMY_DATABASE_URI"]
    with (
        live_app(database_url, str(tmp_path / "other")) as other,
        httpx2.Client(base_url=other.url, cookies=member_http.cookies) as elsewhere,
    ):
        delete_conversation_of(elsewhere, message_id)

    assert_stopped(silent, reader)


def test_deleting_a_user_stops_their_replies_first(
    live_server: LiveServer,
    member_http: httpx2.Client,
    admin_http: httpx2.Client,
    member: Any,
    silent: SilentUpstream,
) -> None:
    message_id, reader = reply_in_flight(live_server, member_http, silent)

    headers = {"HX-Request": "true", "X-CSRFToken": csrf_token(admin_http)}
    deleted = admin_http.post(f"/users/{member.id}/delete", headers=headers)

    assert deleted.status_code == 204
    assert_stopped(silent, reader)
    _db.session.expire_all()
    assert _db.session.get(ChatMessage, message_id) is None


def test_a_deleted_conversations_reply_that_had_not_started_never_starts(
    live_server: LiveServer, member_http: httpx2.Client, silent: SilentUpstream
) -> None:
    message_id = send(member_http, silent_model(silent), "Hello?")

    delete_conversation_of(member_http, message_id)

    assert member_http.get(f"/messages/{message_id}/stream").status_code == 404
    assert silent.requests == 0
    assert live_server.app.extensions["reply_runs"].running() == []


def test_a_reply_deleted_in_another_process_is_stopped_by_the_process_writing_it(
    live_server: LiveServer, member_http: httpx2.Client, silent: SilentUpstream
) -> None:
    """The delete's own Stop may go unheard (a lost bus message, a writer slower than the
    wait): the writer's next look at the database finds the reply gone and stops it."""
    message_id, reader = reply_in_flight(live_server, member_http, silent)

    conversation_id = _db.session.get(ChatMessage, message_id).conversation_id
    _db.session.execute(delete(Conversation).where(Conversation.id == conversation_id))
    _db.session.commit()

    assert_stopped(silent, reader, within=20, runs=live_server.app.extensions["reply_runs"])


# --- the database going away -----------------------------------------------------------------


@pytest.fixture
def outage(live_server: LiveServer) -> Iterator[DatabaseOutage]:
    with live_server.app.app_context():
        engine = _db.engine
    broken = DatabaseOutage(engine)
    yield broken
    broken.remove()


def test_pages_answer_503_without_the_database_and_come_back(
    live_server: LiveServer, member_http: httpx2.Client, outage: DatabaseOutage
) -> None:
    browser = {"Accept": "text/html,application/xhtml+xml"}
    outage.start()
    page = member_http.get("/", headers=browser)
    health = member_http.get("/healthz")
    fragment = member_http.get("/", headers={**browser, "HX-Request": "true"})
    api = member_http.get("/", headers={"Accept": "application/json"})
    outage.end()

    assert page.status_code == 503 and "ModelDesk is unavailable" in page.text
    assert page.headers["Retry-After"] == "5"
    assert health.status_code == 503
    assert fragment.status_code == 503 and "not answering" in fragment.text
    assert api.status_code == 503 and api.json()["error"]["status"] == 503
    assert member_http.get("/").status_code == 200
    assert member_http.get("/healthz").status_code == 200


def test_a_reply_streaming_through_a_database_blip_ends_once_and_is_saved_when_it_is_back(
    live_server: LiveServer,
    member_http: httpx2.Client,
    outage: DatabaseOutage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reply_recorder, "SAVE_RETRY_SECONDS", 0.1)
    model = mock_model(mock_provider(live_server, "chunk_delay=0.02"))
    message_id = send(member_http, model, LONG)

    with member_http.stream("GET", f"/messages/{message_id}/stream") as response:
        frames = []
        for frame in read_frames(response.iter_lines()):
            frames.append(frame)
            if frame.event == "delta" and not outage.away:
                outage.start()  # the server's database goes away mid-reply

    text = deltas_text(frames)
    assert text.startswith("Mock response") and len(text) > 200
    assert [frame.event for frame in frames].count("end") == 1
    assert "Error" not in end_html(frames) and "Incomplete" not in end_html(frames)
    # Still unsaved while the server cannot reach its database (this test's own connection
    # is not part of the outage).
    _db.session.expire_all()
    assert _db.session.get(ChatMessage, message_id).status == "streaming"
    outage.end()
    saved = wait_for_status(message_id, {"complete"})
    assert saved.content == text


def test_checkpoints_append_only_the_new_text(app: Flask, member: Any) -> None:
    model = mock_model(make_provider(name="P", base_url="http://127.0.0.1:9", api_prefix="/v1"))
    conversation = chats.start_conversation(member.id)
    choice, _ = chats.choose(chats.Draft(llm_model_id=model.id, content="hi"))
    assert choice is not None
    _, reply = chats.add_turn(conversation, choice)
    assert reply_states.claim_own(reply.id, session_of(member.id)) is not None
    recorder = reply_recorder.ReplyRecorder(
        _db.engine, reply.id, model_name="m", preset_name=None, checkpoint_seconds=0
    )
    written: list[Any] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE CHAT_MESSAGES"):
            written.append(params)

    event.listen(_db.engine, "before_cursor_execute", capture)
    try:
        recorder.add("a" * 5000)
        recorder.add("b")
    finally:
        event.remove(_db.engine, "before_cursor_execute", capture)

    sizes = [max(len(str(value)) for value in _values(params)) for params in written]
    assert len(written) == 2 and sizes[0] >= 5000 and sizes[1] < 100, sizes
    _db.session.expire_all()
    assert _db.session.get(ChatMessage, reply.id).content == "a" * 5000 + "b"


def _values(params: Any) -> list[Any]:
    return list(params.values()) if isinstance(params, dict) else list(params)


# --- a real PostgreSQL going away: its connections cut by a proxy ------------------------------


def test_postgresql_stopping_mid_reply_loses_nothing_the_reader_saw(
    cut_database: tuple[LiveServer, TcpProxy], member: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, proxy = cut_database
    monkeypatch.setattr(reply_recorder, "SAVE_RETRY_SECONDS", 0.1)
    client = signed_in_client(server)
    model = mock_model(mock_provider(server, "chunk_delay=0.02"))
    message_id = send(client, model, LONG)

    frames = []
    with client.stream("GET", f"/messages/{message_id}/stream") as response:
        for frame in read_frames(response.iter_lines()):
            frames.append(frame)
            if frame.event == "delta" and len(frames) == 2:
                proxy.cut()  # every connection to PostgreSQL drops; new ones are refused
    page_while_cut = client.get("/", headers={"Accept": "text/html"})

    text = deltas_text(frames)
    assert text.startswith("Mock response") and len(text) > 200
    assert [frame.event for frame in frames].count("end") == 1
    assert "Error" not in end_html(frames)
    assert page_while_cut.status_code == 503
    _db.session.expire_all()
    assert _db.session.get(ChatMessage, message_id).status == "streaming"

    proxy.restore()
    saved = wait_for_status(message_id, {"complete"}, within=20)
    assert saved.content == text
    assert wait_for(lambda: client.get("/healthz").status_code == 200)
    client.close()
