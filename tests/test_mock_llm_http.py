"""The mock OpenAI-compatible API over a real socket (`live_server`; the Flask test client
buffers): SSE frames, stream faults, and the openai SDK against it.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest

from tests.support.mock_api import FAULT, TAG, user
from tests.support.waiting import wait_for
from webapp.mock_llm import MockLLMRecord

URL = "/mock_llm/v1/chat/completions"
LONG_PROMPT = "The quick brown fox jumps over the lazy dog. " * 8


def chat_body(prompt: str = LONG_PROMPT, **extra: Any) -> dict[str, Any]:
    return {"model": "mock", "messages": [user(prompt)], "stream": True, **extra}


def open_stream(
    live_server: Any, body: dict[str, Any], headers: dict[str, str] | None = None
) -> http.client.HTTPResponse:
    address = urlsplit(live_server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    connection.request(
        "POST",
        URL,
        body=json.dumps(body),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    return connection.getresponse()


def sse_payloads(raw: bytes) -> list[str]:
    """The `data:` payloads of a complete SSE body, checking the framing on the way."""
    text = raw.decode()
    assert text.endswith("\n\n")
    frames = text[:-2].split("\n\n")
    assert all(frame.startswith("data: ") and "\n" not in frame for frame in frames)
    return [frame.removeprefix("data: ") for frame in frames]


def outcome_of(record: MockLLMRecord, completion_id: str, within: float = 10.0) -> str | None:
    """Poll the mock's record: a disconnect shows up only when the server next writes."""

    def outcome() -> str | None:
        for recorded in record.outcomes():
            if recorded.completion_id == completion_id:
                return recorded.outcome
        return None

    return wait_for(outcome, timeout=within)


@pytest.fixture
def sdk(live_server: Any) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=live_server.url + "/mock_llm/v1", api_key="x", max_retries=0, timeout=10
    ) as client:
        yield client


class TestStreamingFrames:
    def test_sse_frames(self, live_server: Any) -> None:
        response = open_stream(live_server, chat_body())
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Accel-Buffering"] == "no"
        payloads = sse_payloads(response.read())
        assert payloads[-1] == "[DONE]"
        chunks = [json.loads(payload) for payload in payloads[:-1]]

        first, *middle, finish = chunks
        assert first["choices"] == [
            {"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}
        ]
        pieces = [chunk["choices"][0]["delta"]["content"] for chunk in middle]
        assert all(0 < len(piece) <= 18 for piece in pieces)
        assert all(chunk["choices"][0]["finish_reason"] is None for chunk in middle)
        collapsed = " ".join(LONG_PROMPT.split())[:240]
        assert re.fullmatch(
            re.escape(f"Mock response (model=mock): {collapsed}") + TAG, "".join(pieces)
        )
        assert finish["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
        assert "usage" not in finish

        assert re.fullmatch(r"mockcmpl-[0-9a-f]{24}", first["id"])
        for chunk in chunks:
            assert chunk["object"] == "chat.completion.chunk"
            assert (chunk["id"], chunk["created"], chunk["model"]) == (
                first["id"],
                first["created"],
                "mock",
            )
        assert outcome_of(live_server.app.extensions["mock_llm"], first["id"]) == "completed"

    def test_usage_rides_on_the_finish_chunk_when_asked(self, live_server: Any) -> None:
        body = chat_body("abcdefghi", stream_options={"include_usage": True})
        chunks = [json.loads(p) for p in sse_payloads(open_stream(live_server, body).read())[:-1]]
        content = "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks)
        assert chunks[-1]["usage"] == {
            "prompt_tokens": 3,
            "completion_tokens": math.ceil(len(content) / 4),
            "total_tokens": 3 + math.ceil(len(content) / 4),
        }
        assert all("usage" not in chunk for chunk in chunks[:-1])

    def test_stream_delay_is_read_per_request(self, live_server: Any) -> None:
        live_server.app.config["MOCK_LLM_STREAM_DELAY"] = 0.1
        started = time.monotonic()
        payloads = sse_payloads(open_stream(live_server, chat_body("")).read())
        content_pieces = len(payloads) - 3  # role, finish, [DONE]
        assert content_pieces == 3
        assert time.monotonic() - started >= 0.1 * (content_pieces - 1)

    def test_cut_drops_the_connection_without_the_last_chunk(self, live_server: Any) -> None:
        response = open_stream(live_server, chat_body(), {FAULT: "cut=2"})
        assert response.status == 200
        # The chunked body ends without its terminating zero-length chunk.
        with pytest.raises(http.client.IncompleteRead) as caught:
            response.read()
        payloads = sse_payloads(caught.value.partial)
        deltas = [json.loads(payload)["choices"][0]["delta"] for payload in payloads]
        assert deltas[0] == {"role": "assistant"}
        assert [set(delta) for delta in deltas[1:]] == [{"content"}, {"content"}]

    def test_cut_beyond_the_reply_still_cuts_before_the_finish(self, live_server: Any) -> None:
        address = urlsplit(live_server.url)
        body = json.dumps(chat_body("hi")).encode()
        with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
            sock.sendall(
                b"POST " + URL.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                b"X-Mock-Fault: cut=100\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            raw = b"".join(iter(lambda: sock.recv(65536), b""))
        assert b"Transfer-Encoding: chunked" in raw
        assert b'"content":"' in raw
        assert b'"finish_reason":"stop"' not in raw
        assert b"[DONE]" not in raw
        assert not raw.endswith(b"0\r\n\r\n")

    def test_error_sends_one_error_frame_and_ends_the_stream(self, live_server: Any) -> None:
        payloads = sse_payloads(open_stream(live_server, chat_body(), {FAULT: "error=1"}).read())
        assert len(payloads) == 3
        assert json.loads(payloads[1])["choices"][0]["delta"]["content"]
        assert json.loads(payloads[2]) == {
            "error": {"message": "mock fault: in-band error", "type": "server_error"}
        }


class TestOpenAISDK:
    def test_non_streaming(self, sdk: openai.OpenAI) -> None:
        completion = sdk.chat.completions.create(
            model="mock", messages=[{"role": "user", "content": "Hello there"}]
        )
        assert re.fullmatch(
            r"Mock response \(model=mock\): Hello there" + TAG,
            completion.choices[0].message.content or "",
        )
        assert completion.choices[0].finish_reason == "stop"
        assert completion.usage is not None
        assert completion.usage.prompt_tokens == 3

    def test_models_list(self, sdk: openai.OpenAI) -> None:
        assert [model.id for model in sdk.models.list()] == ["mock"]

    def test_streaming(self, sdk: openai.OpenAI, live_server: Any) -> None:
        with sdk.chat.completions.create(
            model="mock",
            messages=[{"role": "user", "content": LONG_PROMPT}],
            stream=True,
            stream_options={"include_usage": True},
        ) as stream:
            chunks = list(stream)
        content = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
        assert content.startswith("Mock response (model=mock): The quick brown fox")
        assert chunks[-1].choices[0].finish_reason == "stop"
        assert chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == math.ceil(len(content) / 4)
        outcome = outcome_of(live_server.app.extensions["mock_llm"], chunks[0].id)
        assert outcome == "completed"

    @pytest.mark.parametrize(
        ("status", "exception"),
        [
            (400, openai.BadRequestError),
            (401, openai.AuthenticationError),
            (403, openai.PermissionDeniedError),
            (404, openai.NotFoundError),
            (409, openai.ConflictError),
            (422, openai.UnprocessableEntityError),
            (429, openai.RateLimitError),
            (500, openai.InternalServerError),
            (503, openai.InternalServerError),
        ],
    )
    def test_status_raises_the_matching_exception(
        self, sdk: openai.OpenAI, status: int, exception: type[Exception]
    ) -> None:
        with pytest.raises(exception) as caught:
            sdk.chat.completions.create(
                model="mock",
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={FAULT: f"status={status}"},
            )
        assert caught.value.status_code == status
        assert caught.value.message.startswith(f"Error code: {status}")
        assert caught.value.body["message"] == f"mock fault: HTTP {status}"

    def test_status_on_a_stream_raises_before_any_chunk(self, sdk: openai.OpenAI) -> None:
        with pytest.raises(openai.InternalServerError) as caught:
            sdk.chat.completions.create(
                model="mock",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                extra_headers={FAULT: "status=503"},
            )
        assert caught.value.body["type"] == "server_error"

    def test_rate_limit_says_when_to_retry(self, sdk: openai.OpenAI) -> None:
        with pytest.raises(openai.RateLimitError) as caught:
            sdk.models.list(extra_headers={FAULT: "status=429"})
        assert caught.value.response.headers["retry-after"] == "1"
        assert caught.value.code == "rate_limit_exceeded"

    @pytest.mark.parametrize("stream", [False, True])
    def test_delay_beyond_the_client_timeout_times_out(
        self, sdk: openai.OpenAI, stream: bool
    ) -> None:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            sdk.with_options(timeout=0.3).chat.completions.create(
                model="mock",
                messages=[{"role": "user", "content": "hi"}],
                stream=stream,
                extra_headers={FAULT: "delay=10"},
            )
        # About 0.3 s; waiting out the delay would take 10 s.
        assert time.monotonic() - started < 3

    @pytest.mark.parametrize("stream", [False, True])
    def test_delay_holds_back_the_first_byte(self, sdk: openai.OpenAI, stream: bool) -> None:
        started = time.monotonic()
        with sdk.chat.completions.with_streaming_response.create(
            model="mock",
            messages=[{"role": "user", "content": "hi"}],
            stream=stream,
            extra_headers={FAULT: "delay=0.3"},
        ) as response:
            assert time.monotonic() - started >= 0.3
            assert response.status_code == 200

    def test_cut_is_a_connection_error_after_the_pieces_sent(
        self, sdk: openai.OpenAI, live_server: Any
    ) -> None:
        received: list[Any] = []
        with (
            pytest.raises(openai.APIConnectionError) as caught,
            sdk.chat.completions.create(
                model="mock",
                messages=[{"role": "user", "content": LONG_PROMPT}],
                stream=True,
                extra_headers={FAULT: "cut=2"},
            ) as stream,
        ):
            for chunk in stream:
                received.append(chunk)
        # httpx2 notices the missing terminating chunk; the SDK wraps that as a connection error.
        assert "incomplete chunked read" in str(caught.value.__cause__)
        assert [chunk.choices[0].delta.content for chunk in received] == [
            None,
            "Mock response (mod",
            "el=mock): The quic",
        ]
        record = live_server.app.extensions["mock_llm"]
        assert outcome_of(record, received[0].id) == "cut"

    def test_error_frame_raises_api_error(self, sdk: openai.OpenAI, live_server: Any) -> None:
        received: list[Any] = []
        with (
            pytest.raises(openai.APIError) as caught,
            sdk.chat.completions.create(
                model="mock",
                messages=[{"role": "user", "content": LONG_PROMPT}],
                stream=True,
                extra_headers={FAULT: "error=1"},
            ) as stream,
        ):
            for chunk in stream:
                received.append(chunk)
        assert not isinstance(caught.value, openai.APIStatusError | openai.APIConnectionError)
        assert caught.value.message == "mock fault: in-band error"
        assert caught.value.type == "server_error"
        assert len(received) == 2
        assert outcome_of(live_server.app.extensions["mock_llm"], received[0].id) == "error"

    def test_client_leaving_early_is_recorded_as_disconnected(
        self, sdk: openai.OpenAI, live_server: Any
    ) -> None:
        with sdk.chat.completions.create(
            model="mock",
            messages=[{"role": "user", "content": LONG_PROMPT}],
            stream=True,
            extra_headers={FAULT: "chunk_delay=0.2"},
        ) as stream:
            first = next(iter(stream))
        # Leaving the block closes the connection while the mock has ~3 s of pieces to send.
        assert outcome_of(live_server.app.extensions["mock_llm"], first.id) == "disconnected"
