"""The chat reply stream over real HTTP (`live_server`; the Flask test client buffers).

A member signs in over HTTP, sends a message, and reads `/messages/<id>/stream` with a
streaming client: `delta` frames arrive as the mock writes them, one `end` frame carries the
final message, and the outcome is in the database whatever happened on the way.
"""

from __future__ import annotations

import html
import re
import time
from typing import Any

import httpx2
import pytest
from flask import Flask
from sqlalchemy import event

from tests.support.app import LiveServer
from tests.support.chat_http import (
    LONG_PROMPT,
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
from tests.support.factories import make_preset
from tests.support.mock_api import mock_reply_pattern
from tests.support.net import closed_port_url
from tests.support.users import csrf_token, signed_in_client
from tests.support.waiting import wait_for
from webapp.blueprints.chat import sse_frame
from webapp.extensions import db as _db
from webapp.models import ChatMessage, User

# --- tests -----------------------------------------------------------------------------


@pytest.fixture
def http(member_http: httpx2.Client) -> httpx2.Client:
    return member_http


def test_frames_arrive_incrementally_and_the_reply_is_saved(
    app: Flask, live_server: LiveServer, http: httpx2.Client
) -> None:
    model = mock_model(mock_provider(live_server, "chunk_delay=0.05"))
    message_id = send(http, model, LONG_PROMPT)

    response, frames = stream(http, message_id)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    deltas = [frame for frame in frames if frame.event == "delta"]
    assert len(deltas) >= 10
    # Spread over time, as the mock wrote them (≥ 0.05 s apart), not all at the end.
    assert deltas[-1].at - deltas[0].at >= 0.05 * (len(deltas) - 1) * 0.6
    reply = deltas_text(frames)
    assert re.fullmatch(mock_reply_pattern(LONG_PROMPT), reply)

    final = end_html(frames)
    assert f'id="message-{message_id}"' in final
    assert "sse-connect" not in final
    assert "Mock" in final and "Default" in final
    assert "tok/s" in final and "first token" in final

    message = wait_for_status(message_id, {"complete"})
    assert message.status == "complete"
    assert message.content == reply
    assert message.model_name == "Mock"
    assert message.preset_name == "Default"
    assert message.usage is not None
    assert message.usage["completion_tokens"] == -(-len(reply) // 4)
    assert message.ttft_ms is not None and 0 < message.ttft_ms <= message.total_ms
    assert message.tokens_per_second is not None
    assert message.details["finish_reason"] == "stop"
    assert stream_outcomes(live_server) == ["completed"]


def test_a_second_request_for_the_same_reply_gets_204_and_no_model_call(
    app: Flask, live_server: LiveServer, http: httpx2.Client
) -> None:
    model = mock_model(mock_provider(live_server))
    message_id = send(http, model)
    stream(http, message_id)

    again = http.get(f"/messages/{message_id}/stream")

    assert again.status_code == 204
    assert stream_outcomes(live_server, count=2, within=0.3) == ["completed"]


def test_model_output_is_escaped_in_deltas(
    app: Flask, live_server: LiveServer, http: httpx2.Client
) -> None:
    model = mock_model(mock_provider(live_server))
    message_id = send(http, model, "<script>alert(1)</script> <b onclick=x>hi</b>")

    _, frames = stream(http, message_id)

    raw = "".join(frame.data for frame in frames if frame.event == "delta")
    assert "<" not in raw and ">" not in raw
    assert "&lt;script&gt;" in raw
    final = end_html(frames)
    assert "<script" not in final and "<b " not in final
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in final


def test_history_of_earlier_turns_reaches_the_model(
    app: Flask, live_server: LiveServer, http: httpx2.Client
) -> None:
    model = mock_model(mock_provider(live_server))
    first = send(http, model, "first question")
    stream(http, first)
    conversation_id = _db.session.get(ChatMessage, first).conversation_id
    data = {
        "csrf_token": csrf_token(http),
        "llm_model_id": str(model.id),
        "content": "second question",
    }
    response = http.post(
        f"/c/{conversation_id}/messages", data=data, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    [second] = [int(i) for i in re.findall(r"/messages/(\d+)/stream", response.text)]

    stream(http, second)

    message = wait_for_status(second, {"complete"})
    first_reply = _db.session.get(ChatMessage, first).content
    # The mock counts prompt tokens from every message it was sent: both turns.
    prompt_chars = len("first question") + len(first_reply) + len("second question")
    assert message.usage["prompt_tokens"] == -(-prompt_chars // 4)


def test_prompt_too_long_ends_with_the_four_numbers(
    app: Flask, live_server: LiveServer, http: httpx2.Client
) -> None:
    model = mock_model(mock_provider(live_server))
    preset = make_preset(model, key="short", name="Short", llm_options_overrides={"max_tokens": 8})
    message_id = send(http, model, LONG_PROMPT, llm_preset_id=str(preset.id))
    # The send was checked against the window of then; the reply checks again (the backstop).
    model.context_window_tokens = 30
    _db.session.commit()

    _, frames = stream(http, message_id)

    assert [frame.event for frame in frames] == ["end"]
    message = wait_for_status(message_id, {"error"})
    assert message.status == "error"
    assert message.error_code == "PROMPT_TOO_LONG"
    budget = message.details["budget"]
    assert budget["max_tokens"] == 30
    assert budget["reserve_tokens"] == 8
    assert budget["limit_tokens"] == 22
    assert budget["estimated_tokens"] > 22
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", end_html(frames))).split())
    assert (
        f"estimated {budget['estimated_tokens']} tokens, limit 22 = window 30 − reserve 8"
    ) in text
    assert stream_outcomes(live_server, within=0.2) == []


def test_a_model_disabled_after_sending_ends_with_model_disabled(
    app: Flask, live_server: LiveServer, http: httpx2.Client
) -> None:
    model = mock_model(mock_provider(live_server))
    message_id = send(http, model)
    model.enabled = False
    _db.session.commit()

    _, frames = stream(http, message_id)

    final = end_html(frames)
    assert "Model disabled" in final and "Mock is disabled" in final
    message = wait_for_status(message_id, {"error"})
    assert (message.status, message.error_code) == ("error", "MODEL_DISABLED")


def test_a_preset_deleted_after_sending_ends_with_preset_not_found(
    app: Flask, live_server: LiveServer, http: httpx2.Client
) -> None:
    model = mock_model(mock_provider(live_server))
    preset = model.llm_presets[0]
    message_id = send(http, model, llm_preset_id=str(preset.id))
    _db.session.delete(preset)
    _db.session.commit()

    _, frames = stream(http, message_id)

    assert "Preset not found" in end_html(frames)
    message = wait_for_status(message_id, {"error"})
    assert message.error_code == "PRESET_NOT_FOUND"


@pytest.mark.parametrize("where", ["status=503", "closed port"])
def test_upstream_failures_end_with_a_readable_error(
    app: Flask, live_server: LiveServer, http: httpx2.Client, where: str
) -> None:
    if where == "closed port":
        provider = mock_provider(live_server, base_url=closed_port_url())
    else:
        provider = mock_provider(live_server, where)
    model = mock_model(provider)
    message_id = send(http, model)

    _, frames = stream(http, message_id)

    final = end_html(frames)
    assert "The provider request failed" in final
    message = wait_for_status(message_id, {"error"})
    assert (message.status, message.error_code) == ("error", "LLM_REQUEST_FAILED")
    expected = "HTTP 503" if where == "status=503" else "connection to the provider failed"
    assert expected in message.error_text
    assert expected in html.unescape(final)


def test_a_stream_cut_by_the_provider_keeps_the_text_as_incomplete(
    app: Flask, live_server: LiveServer, http: httpx2.Client
) -> None:
    model = mock_model(mock_provider(live_server, "cut=3"))
    message_id = send(http, model, LONG_PROMPT)

    _, frames = stream(http, message_id)

    reply = deltas_text(frames)
    assert 0 < len(reply) <= 3 * 18
    message = wait_for_status(message_id, {"incomplete"})
    assert message.status == "incomplete"
    assert message.content == reply
    assert message.error_code == "LLM_REQUEST_FAILED"
    assert "Incomplete" in end_html(frames)


def test_a_reply_goes_on_when_its_page_leaves_and_a_reload_follows_it_from_the_start(
    app: Flask, live_server: LiveServer, http: httpx2.Client
) -> None:
    model = mock_model(mock_provider(live_server, "chunk_delay=0.05"))
    message_id = send(http, model, LONG_PROMPT)

    received = ""
    with http.stream("GET", f"/messages/{message_id}/stream") as response:
        for frame in read_frames(response.iter_lines()):
            received += html.unescape(frame.data)
            if len(received) >= 3 * 18:
                break
    _, frames = stream(http, message_id)  # the page comes back: the reply is still going

    followed = deltas_text(frames)
    message = wait_for_status(message_id, {"complete"})
    assert followed == message.content  # every character, once, from the first
    assert followed.startswith(received) and len(followed) > len(received)
    assert [frame.event for frame in frames].count("end") == 1
    assert stream_outcomes(live_server) == ["completed"]


def test_a_second_tab_follows_a_reply_live_and_the_model_is_called_once(
    app: Flask, live_server: LiveServer, http: httpx2.Client
) -> None:
    model = mock_model(mock_provider(live_server, "chunk_delay=0.05"))
    message_id = send(http, model, LONG_PROMPT)
    second_tab = signed_in_client(live_server)

    with http.stream("GET", f"/messages/{message_id}/stream") as first:
        first_frames = read_frames(first.iter_lines())
        assert next(first_frames).event == "delta"
        _, followed = stream(second_tab, message_id)
        rest = list(first_frames)

    message = wait_for_status(message_id, {"complete"})
    assert deltas_text(followed) == message.content
    assert end_html(followed).strip() == end_html(rest).strip()
    assert stream_outcomes(live_server) == ["completed"]
    second_tab.close()


def test_another_users_reply_cannot_be_streamed(
    app: Flask, live_server: LiveServer, http: httpx2.Client, admin: Any
) -> None:
    model = mock_model(mock_provider(live_server))
    message_id = send(http, model)
    other = signed_in_client(live_server, "admin@example.com")

    assert other.get(f"/messages/{message_id}/stream").status_code == 404
    assert wait_for_status(message_id, {"pending"}, within=0).status == "pending"
    other.close()


def test_the_end_frame_is_what_a_reload_shows(
    app: Flask, live_server: LiveServer, http: httpx2.Client
) -> None:
    model = mock_model(mock_provider(live_server))
    message_id = send(http, model)

    _, frames = stream(http, message_id)

    assert http.get(f"/messages/{message_id}").text.strip() == end_html(frames).strip()


# --- the frame format ------------------------------------------------------------------


def test_sse_frames_split_lines_into_data_fields() -> None:
    assert sse_frame("delta", "one") == "event: delta\ndata: one\n\n"
    assert (
        sse_frame("delta", "a\nb\r\nc\rd") == "event: delta\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
    )
    assert sse_frame("delta", "ends\n") == "event: delta\ndata: ends\ndata: \n\n"
    opened = sse_frame("reset", "") + sse_frame("delta", "x\n\ny")
    frames = list(read_frames(iter(opened.split("\n"))))
    assert [frame.data for frame in frames] == ["x\n\ny"]


def test_past_the_stream_limit_a_reply_is_refused_at_once_as_busy(
    live_server: LiveServer, http: httpx2.Client
) -> None:
    """A process at its stream cap says "busy, try again" instead of queueing; once a slot
    is free again the next reply streams."""
    model = mock_model(mock_provider(live_server))
    slots = live_server.app.extensions["stream_slots"]
    held = [slots.try_acquire() for _ in range(slots.limit)]
    assert all(held) and not slots.try_acquire()
    try:
        busy_id = send(http, model, "Are you busy?")
        started = time.monotonic()
        _, frames = stream(http, busy_id)
        assert time.monotonic() - started < 2
        assert [frame.event for frame in frames] == ["end"]
        assert "Busy" in frames[0].data and "Try again" in frames[0].data
        busy = wait_for_status(busy_id, {"error"})
        assert (busy.status, busy.error_code) == ("error", "BUSY")
    finally:
        for _ in held:
            slots.release()
    ok_id = send(http, model, "Now?")
    _, frames = stream(http, ok_id)
    assert re.fullmatch(mock_reply_pattern("Now?"), deltas_text(frames))
    assert wait_for_status(ok_id, {"complete"}).status == "complete"
    # Every slot came back: the finished stream released its own. It does so when the response
    # closes, which can be just after the client has read the last frame.

    def every_slot_free() -> bool:
        taken = 0
        while taken < slots.limit and slots.try_acquire():
            taken += 1
        for _ in range(taken):
            slots.release()
        return taken == slots.limit

    assert wait_for(every_slot_free)


# --- the hot path: statements per reply, the model cache ------------------------------------


def test_an_edit_to_the_model_or_its_provider_is_seen_by_the_very_next_reply(
    app: Flask, live_server: LiveServer, http: httpx2.Client
) -> None:
    model = mock_model(mock_provider(live_server))
    stream(http, send(http, model))  # the model's configuration is now cached

    model.name = "Renamed model"
    _db.session.commit()
    renamed = send(http, model)
    stream(http, renamed)
    model.llm_provider.base_url = closed_port_url()
    _db.session.commit()
    moved = send(http, model)
    _, frames = stream(http, moved)

    assert wait_for_status(renamed, {"complete"}).model_name == "Renamed model"
    assert "could not reach" in end_html(frames) or "refused" in end_html(frames)


def test_a_reply_costs_the_database_two_statements_with_the_model_cached(
    app: Flask, live_server: LiveServer, http: httpx2.Client
) -> None:
    """The claim (session, ownership, model version, history) and the outcome — nothing else
    on the stream's path once the model's configuration is cached."""
    model = mock_model(mock_provider(live_server))
    stream(http, send(http, model))
    message_id = send(http, model)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "usage_records" not in statement:  # written in batches, off the path
            statements.append(statement.split()[0].upper())

    with live_server.app.app_context():
        engine = _db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        stream(http, message_id)
        assert wait_for_status(message_id, {"complete"}).status == "complete"
    finally:
        event.remove(engine, "before_cursor_execute", count)

    assert statements == ["UPDATE", "UPDATE"], statements


def test_pages_following_replies_hold_no_database_connection(
    app: Flask, live_server: LiveServer, http: httpx2.Client
) -> None:
    """Each open stream (the one that started the reply and a second tab in the same process)
    gave its request's connection back: followers read memory, not the pool."""
    model = mock_model(mock_provider(live_server, "chunk_delay=0.2"))
    message_id = send(http, model, LONG_PROMPT)
    second_tab = signed_in_client(live_server)
    with live_server.app.app_context():
        pool = _db.engine.pool

    with http.stream("GET", f"/messages/{message_id}/stream") as first:
        assert next(read_frames(first.iter_lines())).event == "delta"
        with second_tab.stream("GET", f"/messages/{message_id}/stream") as second:
            assert next(read_frames(second.iter_lines())).event == "delta"
            assert pool.checkedout() == 0  # type: ignore[attr-defined]
    second_tab.close()


@pytest.mark.parametrize("ending", ["signed out elsewhere", "disabled"])
def test_a_stream_whose_session_ended_starts_nothing(
    app: Flask, live_server: LiveServer, http: httpx2.Client, ending: str
) -> None:
    """The stream checks the session in the claim itself (no user query first): a session
    that no longer counts is sent to sign in, and the reply stays pending, never run."""
    model = mock_model(mock_provider(live_server))
    message_id = send(http, model)
    member = _db.session.get(User, _db.session.get(ChatMessage, message_id).conversation.user_id)
    if ending == "disabled":
        member.disabled = True
    member.session_version += 1
    _db.session.commit()

    response = http.get(f"/messages/{message_id}/stream")

    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert wait_for_status(message_id, {"pending"}).status == "pending"


def test_a_stream_without_a_session_is_sent_to_sign_in(
    app: Flask, live_server: LiveServer, http: httpx2.Client
) -> None:
    model = mock_model(mock_provider(live_server))
    message_id = send(http, model)

    with httpx2.Client(base_url=live_server.url, timeout=10) as stranger:
        response = stranger.get(f"/messages/{message_id}/stream")

    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert wait_for_status(message_id, {"pending"}).status == "pending"
