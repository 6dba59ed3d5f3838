"""stream_chat against the real mock API: deltas, one final event, no database after the call,
and an early close that reaches the provider. Failures of every kind, for run_chat and
stream_chat alike, are in test_chat_service.py.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event

from tests.support.factories import make_preset
from tests.support.mock_api import (
    LONG_PROMPT,
    MockAPI,
    done_result,
    events_of,
    faulty_model,
    mock_model,
    mock_provider,
    mock_reply_pattern,
    mock_usage,
    only_error,
    stream_outcomes,
)
from tests.support.net import closed_port_url
from webapp.models import LLMModel
from webapp.services import stream_chat


@pytest.fixture
def model(app: Flask, mock_api: MockAPI) -> LLMModel:
    return mock_model(mock_provider(mock_api.url))


def test_deltas_reassemble_into_the_reply_then_one_done_event(
    mock_api: MockAPI, model: LLMModel
) -> None:
    make_preset(model, llm_options_overrides={"temperature": 0.0})

    events = events_of(model, system="Be terse.", user_text=LONG_PROMPT)

    result = done_result(events)
    deltas = [e.content for e in events if e.type == "delta"]
    reply = "".join(deltas)
    assert re.fullmatch(mock_reply_pattern(LONG_PROMPT), reply)
    # The mock sends pieces of at most 18 characters; each arrives as its own delta.
    assert all(0 < len(piece) <= 18 for piece in deltas)
    assert len(deltas) == math.ceil(len(reply) / 18)
    value = result.value
    assert value["assistant_message"] == {"role": "assistant", "content": reply}
    assert value["preset"].key == "default"
    [body] = mock_api.wire.bodies
    assert value["request"] == body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.0
    assert value["usage"] == mock_usage(body["messages"], reply)
    assert value["finish_reason"] == "stop"
    timings = value["timings"]
    assert 0 < timings["ttft_ms"] <= timings["total_ms"]
    assert stream_outcomes(mock_api.record) == ["completed"]


def test_nothing_is_sent_until_the_stream_is_iterated(mock_api: MockAPI, model: LLMModel) -> None:
    stream = stream_chat(model, user_text="hi")

    assert mock_api.wire.requests == []
    assert next(stream).type == "delta"
    assert len(mock_api.wire.requests) == 1
    stream.close()


def test_the_stream_needs_no_database_after_the_call(
    app: Flask, db: Any, mock_api: MockAPI, model: LLMModel
) -> None:
    make_preset(model, llm_options_overrides={"temperature": 0.0})
    succeeding = stream_chat(model, user_text="hi")
    model.llm_provider.base_url = closed_port_url()
    failing = stream_chat(model, user_text="hi")
    # Expire every loaded row and drop the session: a lazy load would now raise, and any
    # statement would show up below.
    db.session.rollback()
    db.session.remove()
    statements: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))

    done = done_result(list(succeeding))
    failed = only_error(list(failing))

    assert statements == []
    assert re.fullmatch(mock_reply_pattern("hi"), done.value["assistant_message"]["content"])
    assert done.value["request"]["temperature"] == 0.0
    assert failed.code == "LLM_REQUEST_FAILED"
    assert "refused" in failed.errors[0].lower()


def test_closing_the_stream_early_disconnects_from_the_provider(
    app: Flask, mock_api: MockAPI
) -> None:
    model = faulty_model(mock_api.url, "chunk_delay=0.05")
    stream = stream_chat(model, user_text=LONG_PROMPT)

    first = next(stream)
    stream.close()
    closed_at = time.monotonic()

    assert first.type == "delta"
    # Without the close the mock would go on for ~0.8 s and record "completed".
    assert stream_outcomes(mock_api.record) == ["disconnected"]
    assert time.monotonic() - closed_at < 2.0


def test_a_stream_that_ends_without_a_finish_is_an_error(
    app: Flask, mock_api: MockAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unfinished(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        chunk = {
            "id": "x",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "mock",
            "choices": [{"index": 0, "delta": {"content": "half"}, "finish_reason": None}],
        }
        yield f"data: {json.dumps(chunk)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    monkeypatch.setattr(mock_api.app, "wsgi_app", unfinished)
    model = mock_model(mock_provider(mock_api.url))

    events = events_of(model, user_text="hi")

    result = only_error(events)
    assert [e.type for e in events] == ["delta", "error"]
    assert result.code == "LLM_REQUEST_FAILED"
    assert result.errors == ["the provider's stream ended before the reply was complete"]
    assert result.value["partial_content"] == "half"
