"""The mock OpenAI-compatible API: contract, reply rules, streaming and fault injection.

Streaming is checked over a real socket (`live_server`): the Flask test client buffers.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.waiting import wait_for
from webapp import create_app
from webapp.blueprints.mock_llm import MockLLMRecord
from webapp.services.mock_replies import (
    Faults,
    InvalidFaultHeader,
    content_text,
    parse_faults,
    stream_pieces,
)

URL = "/mock_llm/v1/chat/completions"
FAULT = "X-Mock-Fault"
TAG = r" \[#[0-9a-f]{8}\]"
GREETING = re.escape("Hello! (mock) How can I help you today?") + TAG
LONG_PROMPT = "The quick brown fox jumps over the lazy dog. " * 8
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def system(content: Any) -> dict[str, Any]:
    return {"role": "system", "content": content}


def post(client: FlaskClient, body: Any, headers: dict[str, str] | None = None) -> Any:
    return client.post(URL, json=body, headers=headers or {})


def reply(client: FlaskClient, messages: list[Any], **extra: Any) -> str:
    response = post(client, {"model": "m", "messages": messages, **extra})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["choices"][0]["message"]["content"]


def error_of(response: Any) -> dict[str, Any]:
    return response.get_json()["error"]


class TestModels:
    def test_lists_the_mock_model(self, client: FlaskClient) -> None:
        body = client.get("/mock_llm/v1/models").get_json()
        assert body["object"] == "list"
        [model] = body["data"]
        assert {k: v for k, v in model.items() if k != "created"} == {
            "id": "mock",
            "object": "model",
            "owned_by": "mock_llm",
        }
        assert isinstance(model["created"], int)
        assert abs(model["created"] - time.time()) < 5


class TestRequestValidation:
    @pytest.mark.parametrize(
        "raw",
        [b"", b"{", b"not json", b"\xff\xfe{}", b"[" * 100_000],
        ids=["empty", "truncated", "text", "not-utf8", "nested-too-deep"],
    )
    def test_body_that_is_not_json_is_rejected(self, client: FlaskClient, raw: bytes) -> None:
        response = client.post(URL, data=raw, content_type="application/json")
        assert response.status_code == 400
        assert response.get_json() == {
            "error": {"message": "invalid JSON body", "type": "invalid_request_error"}
        }

    @pytest.mark.parametrize("body", [[], None, 42, "text", [{"model": "m"}]])
    def test_json_that_is_not_an_object_is_rejected(self, client: FlaskClient, body: Any) -> None:
        response = client.post(URL, data=json.dumps(body), content_type="application/json")
        assert response.status_code == 400
        assert error_of(response)["message"] == "invalid JSON body"

    @pytest.mark.parametrize("model", ["", "   ", None, 5, ["m"], "missing"])
    def test_model_is_required(self, client: FlaskClient, model: Any) -> None:
        body: dict[str, Any] = {"messages": [user("hi")]}
        if model != "missing":
            body["model"] = model
        response = post(client, body)
        assert response.status_code == 400
        assert response.get_json() == {
            "error": {"message": "model is required", "type": "invalid_request_error"}
        }

    @pytest.mark.parametrize("messages", [[], None, {}, "hi", {"role": "user"}, "missing"])
    def test_messages_must_be_a_non_empty_array(self, client: FlaskClient, messages: Any) -> None:
        body: dict[str, Any] = {"model": "m"}
        if messages != "missing":
            body["messages"] = messages
        response = post(client, body)
        assert response.status_code == 400
        assert error_of(response)["message"] == "messages must be a non-empty array"

    def test_odd_message_items_are_skipped_not_a_server_error(self, client: FlaskClient) -> None:
        messages = [1, "text", None, [], {"content": "no role"}, {"role": "user"}, user(5)]
        assert re.fullmatch(GREETING, reply(client, messages))

    def test_content_parts_are_joined(self, client: FlaskClient) -> None:
        parts = [
            {"type": "text", "text": "hello"},
            {"type": "image_url", "image_url": {"url": "https://x.example/a.png"}},
            {"type": "text", "text": "world"},
            "stray",
        ]
        response = post(client, {"model": "m", "messages": [user(parts)]})
        body = response.get_json()
        content = body["choices"][0]["message"]["content"]
        assert re.fullmatch(r"Mock response \(model=m\): hello world" + TAG, content)
        assert body["usage"]["prompt_tokens"] == math.ceil(len("hello\nworld") / 4)

    def test_lone_surrogates_are_escaped_not_a_server_error(self, client: FlaskClient) -> None:
        raw = '{"model": "m\\ud800", "messages": [{"role": "user", "content": "a\\udfff"}]}'
        response = client.post(URL, data=raw, content_type="application/json")
        assert response.status_code == 200
        assert response.get_json()["model"] == "m\ud800"

    @settings(
        max_examples=150,
        deadline=None,
        # The test client keeps no state between requests to the mock.
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        body=st.fixed_dictionaries(
            {"model": st.just("m") | JSON_VALUES},
            optional={
                "messages": st.lists(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "role": st.sampled_from(["user", "system", "assistant", 3]),
                            "content": JSON_VALUES
                            | st.lists(
                                st.fixed_dictionaries({"type": st.text(), "text": JSON_VALUES})
                            ),
                        },
                    )
                    | JSON_VALUES,
                    max_size=4,
                )
                | JSON_VALUES,
                "max_tokens": JSON_VALUES,
                "stream": st.booleans() | JSON_VALUES,
                "stream_options": st.dictionaries(st.just("include_usage"), JSON_VALUES)
                | JSON_VALUES,
            },
        )
    )
    def test_no_request_body_gives_a_server_error(
        self, client: FlaskClient, body: dict[str, Any]
    ) -> None:
        response = post(client, body)
        response.get_data()  # runs the stream generator, if any
        assert response.status_code in {200, 400}

    @settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(body=JSON_VALUES | st.binary())
    def test_no_top_level_value_gives_a_server_error(self, client: FlaskClient, body: Any) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body)
        response = client.post(URL, data=raw, content_type="application/json")
        assert response.status_code == 400


class TestReplies:
    def test_translation_engine_echoes_the_textarea(self, client: FlaskClient) -> None:
        messages = [
            system("You are a Translation Repair Engine."),
            user('Fix this:\n<textarea name="t" rows="3">Bonjour\n  le monde</textarea> thanks'),
        ]
        assert re.fullmatch(
            r"<textarea>Bonjour\n  le monde</textarea>" + TAG, reply(client, messages)
        )

    def test_textarea_without_translation_engine_gets_the_default_reply(
        self, client: FlaskClient
    ) -> None:
        messages = [system("You are helpful."), user("<textarea>Hi</textarea>")]
        assert re.fullmatch(
            r"Mock response \(model=m\): <textarea>Hi</textarea>" + TAG, reply(client, messages)
        )

    def test_the_last_system_message_decides(self, client: FlaskClient) -> None:
        messages = [
            system("You are a translation engine."),
            system("You are a poet."),
            user("<textarea>Hi</textarea>"),
        ]
        assert reply(client, messages).startswith("Mock response")

    @pytest.mark.parametrize(
        "messages",
        [[user("")], [user(" \n\t ")], [system("Be brief.")], [user("Brief greeting"), user("")]],
        ids=["empty", "whitespace", "no-user-message", "last-user-blank"],
    )
    def test_blank_prompt_gets_the_greeting(self, client: FlaskClient, messages: list[Any]) -> None:
        assert re.fullmatch(GREETING, reply(client, messages))

    def test_brief_greeting(self, client: FlaskClient) -> None:
        content = reply(client, [user("Please give me a BRIEF GREETING.")])
        assert re.fullmatch(r"Hello! \(mock\) Nice to meet you\." + TAG, content)

    def test_default_reply_collapses_whitespace(self, client: FlaskClient) -> None:
        messages = [
            user("Brief greeting"),
            {"role": "assistant", "content": "x"},
            user("  a\n\tb   c "),
        ]
        response = post(client, {"model": "gpt-x", "messages": messages})
        content = response.get_json()["choices"][0]["message"]["content"]
        assert re.fullmatch(r"Mock response \(model=gpt-x\): a b c" + TAG, content)

    def test_default_reply_keeps_the_first_240_characters_after_collapsing(
        self, client: FlaskClient
    ) -> None:
        prompt = "ab  " * 100  # collapses to "ab ab ab …", 299 characters
        content = reply(client, [user(prompt)])
        quoted = re.fullmatch(r"Mock response \(model=m\): (.*)" + TAG, content, re.DOTALL)
        assert quoted is not None
        assert quoted.group(1) == ("ab " * 100)[:240]

    def test_tags_are_random(self, client: FlaskClient) -> None:
        tags = {reply(client, [user("hi")])[-10:] for _ in range(3)}
        assert len(tags) == 3


class TestMaxTokensAndUsage:
    def test_max_tokens_cuts_to_four_characters_a_token(self, client: FlaskClient) -> None:
        assert reply(client, [user("hello")], max_tokens=3) == "Mock respons"

    def test_max_tokens_can_cut_into_the_tag(self, client: FlaskClient) -> None:
        content = reply(client, [user("hi")], max_tokens=8)
        assert re.fullmatch(r"Mock response \(model=m\): hi \[#[0-9a-f]{2}", content)

    @pytest.mark.parametrize("max_tokens", [0, -1, True, 2.0, "3", None])
    def test_max_tokens_other_than_a_positive_integer_is_ignored(
        self, client: FlaskClient, max_tokens: Any
    ) -> None:
        content = reply(client, [user("hello")], max_tokens=max_tokens)
        assert re.fullmatch(r"Mock response \(model=m\): hello" + TAG, content)

    def test_usage_counts_four_characters_a_token_rounded_up(self, client: FlaskClient) -> None:
        messages = [system("abcde"), user("abcdefghij"), {"role": "assistant", "content": "xy"}]
        body = post(client, {"model": "m", "messages": messages}).get_json()
        # 17 prompt characters; "Mock response (model=m): abcdefghij [#…]" is 47 characters.
        assert len(body["choices"][0]["message"]["content"]) == 47
        assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 12, "total_tokens": 17}

    def test_usage_counts_the_cut_reply(self, client: FlaskClient) -> None:
        body = post(client, {"model": "m", "messages": [user("abcd")], "max_tokens": 2}).get_json()
        assert body["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


class TestNonStreamingShape:
    def test_chat_completion_body(self, client: FlaskClient) -> None:
        before = int(time.time())
        body = post(client, {"model": "mock", "messages": [user("hi")]}).get_json()
        assert re.fullmatch(r"mockcmpl-[0-9a-f]{24}", body["id"])
        assert body["object"] == "chat.completion"
        assert before <= body["created"] <= time.time()
        assert body["model"] == "mock"
        [choice] = body["choices"]
        assert choice == {
            "index": 0,
            "message": {"role": "assistant", "content": choice["message"]["content"]},
            "finish_reason": "stop",
        }
        assert set(body) == {"id", "object", "created", "model", "choices", "usage"}

    def test_stream_faults_are_ignored_without_stream(self, client: FlaskClient) -> None:
        response = post(client, {"model": "m", "messages": [user("hi")]}, {FAULT: "cut=0"})
        assert response.status_code == 200
        assert response.get_json()["choices"][0]["finish_reason"] == "stop"


class TestFaultHeader:
    @pytest.mark.parametrize(
        ("status", "error_type", "code"),
        [
            (400, "invalid_request_error", None),
            (401, "authentication_error", "invalid_api_key"),
            (404, "not_found_error", None),
            (418, "invalid_request_error", None),
            (429, "rate_limit_error", "rate_limit_exceeded"),
            (500, "server_error", None),
            (503, "server_error", None),
        ],
    )
    def test_status_answers_an_openai_style_error(
        self, client: FlaskClient, status: int, error_type: str, code: str | None
    ) -> None:
        response = post(
            client, {"model": "m", "messages": [user("hi")]}, {FAULT: f"status={status}"}
        )
        assert response.status_code == status
        assert response.get_json() == {
            "error": {"message": f"mock fault: HTTP {status}", "type": error_type, "code": code}
        }
        assert response.headers.get("Retry-After") == ("1" if status == 429 else None)

    def test_status_applies_to_the_models_list_too(self, client: FlaskClient) -> None:
        response = client.get("/mock_llm/v1/models", headers={FAULT: "status=502"})
        assert response.status_code == 502

    def test_faults_combine_and_tolerate_spaces(self, client: FlaskClient) -> None:
        started = time.monotonic()
        response = post(
            client, {"model": "m", "messages": [user("hi")]}, {FAULT: " delay = 0.2 ;status=503; "}
        )
        assert time.monotonic() - started >= 0.2
        assert response.status_code == 503

    def test_status_comes_before_body_validation(self, client: FlaskClient) -> None:
        response = client.post(URL, data=b"{", headers={FAULT: "status=500"})
        assert response.status_code == 500

    @pytest.mark.parametrize(
        ("header", "problem"),
        [
            ("status=200", "status must be an HTTP error status 400-599, got '200'"),
            ("status=abc", "status must be an HTTP error status"),
            ("status=5000", "status must be an HTTP error status"),
            ("delay=31", "delay must be a number of seconds from 0 to 30, got '31'"),
            ("delay=-1", "delay must be a number of seconds"),
            ("delay=nan", "delay must be a number of seconds"),
            ("chunk_delay=soon", "chunk_delay must be a number of seconds"),
            ("cut=-1", "cut must be a whole number of content pieces"),
            ("cut=1.5", "cut must be a whole number of content pieces"),
            ("error=²", "error must be a whole number of content pieces"),
            ("cut=9999999", "cut must be a whole number of content pieces"),
            ("bogus=1", "unknown fault 'bogus'"),
            ("status", "expected name=value, got 'status'"),
            ("status=500;status=503", "fault 'status' given twice"),
            ("cut=1;error=2", "cut and error cannot be combined"),
        ],
    )
    def test_invalid_header_is_a_400_naming_the_problem(
        self, client: FlaskClient, header: str, problem: str
    ) -> None:
        response = post(client, {"model": "m", "messages": [user("hi")]}, {FAULT: header})
        assert response.status_code == 400
        error = error_of(response)
        assert error["type"] == "invalid_request_error"
        assert error["message"].startswith("invalid X-Mock-Fault header: ")
        assert problem in error["message"]

    def test_parses_every_fault(self) -> None:
        header = "status=429;delay=0.5;chunk_delay=0;cut=3"
        assert parse_faults(header) == Faults(status=429, delay=0.5, chunk_delay=0.0, cut=3)
        assert parse_faults(None) == Faults()
        assert parse_faults("error=0") == Faults(error=0)

    @given(st.text())
    def test_any_header_parses_or_is_rejected_with_a_reason(self, header: str) -> None:
        try:
            parse_faults(header)
        except InvalidFaultHeader as exc:
            assert str(exc)


class TestEnabling:
    def production_config(self, tmp_path: Path, **extra: Any) -> dict[str, Any]:
        return {
            "MODELDESK_ENV": "production",
            "SECRET_KEY": "production-secret",
            "MODELDESK_ENCRYPTION_KEY": "production-encryption-key",
            "INSTANCE_PATH": str(tmp_path),
            **extra,
        }

    def test_off_in_production(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("MOCK_LLM_ENABLED", raising=False)
        app = create_app(self.production_config(tmp_path))
        assert app.test_client().get("/mock_llm/v1/models").status_code == 404
        assert "mock_llm" not in app.extensions

    def test_on_in_production_with_mock_llm_enabled(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("MOCK_LLM_ENABLED", "1")
        app = create_app(self.production_config(tmp_path))
        assert app.test_client().get("/mock_llm/v1/models").status_code == 200
        assert isinstance(app.extensions["mock_llm"], MockLLMRecord)

    def test_on_in_tests(self, client: FlaskClient) -> None:
        assert client.get("/mock_llm/v1/models").status_code == 200


class TestPureHelpers:
    @pytest.mark.parametrize(
        ("content", "text"),
        [
            ("plain", "plain"),
            ([{"type": "text", "text": "a"}, {"text": "b"}, {"text": 1}, "c"], "a\nb"),
            (None, ""),
            (5, ""),
            ({"text": "not a list"}, ""),
        ],
    )
    def test_content_text(self, content: Any, text: str) -> None:
        assert content_text(content) == text

    def test_stream_pieces_are_at_most_18_characters(self) -> None:
        assert stream_pieces("a" * 40) == ["a" * 18, "a" * 18, "a" * 4]
        assert stream_pieces("") == []


# Over real HTTP ------------------------------------------------------------------------------


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
                extra_headers={FAULT: "delay=1"},
            )
        assert time.monotonic() - started < 1

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
