"""The mock OpenAI-compatible API through the Flask test client: contract, reply rules, the
fault header. Streaming over a real socket and the openai SDK are in test_mock_llm_http.py.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.mock_api import FAULT, TAG, user
from webapp import create_app
from webapp.mock_llm import MockLLMRecord
from webapp.mock_llm.replies import (
    Faults,
    InvalidFaultHeader,
    content_text,
    parse_faults,
    stream_pieces,
)

URL = "/mock_llm/v1/chat/completions"
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
            "SECRET_KEY": "production-secret-0123456789abcdef",
            "MODELDESK_ENCRYPTION_KEY": "production-encryption-key-0123456789",
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
