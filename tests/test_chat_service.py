"""run_chat against the real mock API over HTTP, with the rules every call goes through.

The mock runs on a real loopback server (one per module: it keeps no database state, and a
server takes half a second to stop). What the services send is checked on the wire: `MockAPI`
wraps the server's WSGI app and records every request as it arrived, so "nothing was sent" and
"top_k reached the body" are observed, not inferred. Rules the mock cannot exercise (tools,
response_format) use a stand-in client that captures the SDK keyword arguments.

The shared helpers (`MockAPI`, `mock_provider`, ...) are in tests/support/mock_api.py.
"""

from __future__ import annotations

import enum
import re
import time
from typing import Any

import httpx2
import openai
import pytest
from flask import Flask
from openai.types.chat import ChatCompletion

from tests.support.factories import make_preset
from tests.support.mock_api import (
    API_KEY_SECRET,
    HEADER_SECRET,
    LONG_PROMPT,
    MOCK_PREFIX,
    MockAPI,
    WireRecorder,
    done_result,
    echo_credentials,
    events_of,
    faulty_model,
    mock_model,
    mock_provider,
    mock_reply_body,
    mock_reply_pattern,
    mock_usage,
    only_error,
    stream_outcomes,
)
from tests.support.net import closed_port_url
from webapp.llm.errors import describe_upstream_error
from webapp.llm.tokenizer import load_encoding
from webapp.models import LLMModel, LLMProvider
from webapp.services import run_chat
from webapp.services.llm_config import init_llm_settings

TOOLS = [
    {
        "type": "function",
        "function": {"name": "now", "parameters": {"type": "object", "properties": {}}},
    }
]


@pytest.fixture
def wire(mock_api: MockAPI) -> WireRecorder:
    return mock_api.wire


@pytest.fixture
def provider(app: Flask, mock_api: MockAPI) -> LLMProvider:
    return mock_provider(mock_api.url)


@pytest.fixture
def model(provider: LLMProvider) -> LLMModel:
    return mock_model(provider)


def completion(content: str = "ok") -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "id": "stub-1",
            "object": "chat.completion",
            "created": 0,
            "model": "stub",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    )


class CapturingClient:
    """An `openai.OpenAI` stand-in: records the body each create() would send (the SDK
    puts `extra_body` at the top level, over the named arguments)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.chat = self
        self.completions = self

    def create(self, *, extra_body: dict[str, Any] | None = None, **kwargs: Any) -> ChatCompletion:
        self.calls.append({**kwargs, **(extra_body or {})})
        return completion()


class WordEstimator:
    """A deterministic estimator: one token a word; remembers every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    def estimate(self, text: str, model_hint: str | None = None) -> int:
        self.calls.append((text, model_hint))
        return len(text.split())


def words_context(estimator: WordEstimator, **estimation: Any) -> dict[str, Any]:
    return {"token_estimation": {"token_estimator": estimator, **estimation}}


# --- presets ------------------------------------------------------------------------------


class TestPresets:
    def test_default_preset_is_used_when_none_is_named(
        self, model: LLMModel, wire: WireRecorder
    ) -> None:
        default = make_preset(model, llm_options_overrides={"temperature": 0.0, "top_k": 7})
        make_preset(model, key="creative", name="Creative", llm_options_overrides={"seed": 1})

        result = run_chat(model, user_text="hi")

        assert result.success, result.errors
        assert result.value["preset"].id == default.id
        assert result.value["request"]["temperature"] == 0.0
        assert result.value["request"]["top_k"] == 7
        assert "seed" not in result.value["request"]
        assert wire.bodies == [result.value["request"]]

    def test_preset_key_chooses_another_preset(self, model: LLMModel, wire: WireRecorder) -> None:
        make_preset(model, llm_options_overrides={"temperature": 0.0})
        creative = make_preset(
            model, key="creative", name="Creative", llm_options_overrides={"temperature": 1.3}
        )

        result = run_chat(model, user_text="hi", preset_key=" Creative ")

        assert result.success, result.errors
        assert result.value["preset"].id == creative.id
        assert wire.bodies[0]["temperature"] == 1.3

    def test_no_default_preset_means_no_preset(self, model: LLMModel, wire: WireRecorder) -> None:
        make_preset(model, key="creative", name="Creative", llm_options_overrides={"seed": 1})

        result = run_chat(model, user_text="hi")

        assert result.success, result.errors
        assert result.value["preset"] is None
        assert wire.bodies == [{"model": "mock", "messages": [{"role": "user", "content": "hi"}]}]

    def test_missing_preset_key_is_preset_not_found(
        self, model: LLMModel, wire: WireRecorder
    ) -> None:
        make_preset(model)

        result = run_chat(model, user_text="hi", preset_key="nope")

        assert (result.success, result.code) == (False, "PRESET_NOT_FOUND")
        assert "nope" in result.errors[0]
        assert wire.requests == []

    def test_explicit_preset_wins_over_preset_key(
        self, model: LLMModel, wire: WireRecorder
    ) -> None:
        make_preset(model, llm_options_overrides={"temperature": 0.0})
        creative = make_preset(
            model, key="creative", name="Creative", llm_options_overrides={"temperature": 1.3}
        )

        result = run_chat(model, user_text="hi", preset=creative, preset_key="default")

        assert result.value["preset"].id == creative.id
        assert wire.bodies[0]["temperature"] == 1.3

    def test_preset_of_another_model_is_invalid_input(
        self, provider: LLMProvider, model: LLMModel, wire: WireRecorder
    ) -> None:
        other = mock_model(provider, model="mock-2", name="Mock 2", key="mock-2")
        foreign = make_preset(other)

        result = run_chat(model, user_text="hi", preset=foreign)

        assert (result.success, result.code) == (False, "INVALID_INPUT")
        assert wire.requests == []


# --- the enabled gate ---------------------------------------------------------------------


class TestDisabledModel:
    def test_disabled_model_sends_nothing(self, model: LLMModel, wire: WireRecorder) -> None:
        model.enabled = False
        client = CapturingClient()

        result = run_chat(model, user_text="hi")
        injected = run_chat(model, user_text="hi", client=client)
        [event] = events_of(model, user_text="hi")

        for failed in (result, injected, event.result):
            assert failed is not None
            assert (failed.success, failed.code) == (False, "MODEL_DISABLED")
            assert "Mock" in failed.errors[0]
        assert event.type == "error"
        assert client.calls == []
        assert wire.requests == []

    def test_allow_disabled_runs_a_disabled_model(
        self, model: LLMModel, wire: WireRecorder
    ) -> None:
        model.enabled = False

        result = run_chat(model, user_text="hi", allow_disabled=True)
        streamed = done_result(events_of(model, user_text="hi", allow_disabled=True))

        assert result.success, result.errors
        assert streamed.success
        assert len(wire.requests) == 2


# --- options ------------------------------------------------------------------------------


class TestOptions:
    def test_deep_merge_of_provider_preset_and_request_reaches_the_body(
        self, app: Flask, mock_api: MockAPI, wire: WireRecorder
    ) -> None:
        defaults = {
            "temperature": 0.2,
            "top_p": 0.9,
            "provider": {"order": ["a", "b"], "allow_fallbacks": False},
        }
        provider = mock_provider(mock_api.url, llm_options_defaults=defaults)
        model = mock_model(provider)
        make_preset(
            model,
            llm_options_overrides={"temperature": 0.5, "top_k": 20, "provider": {"order": ["c"]}},
        )

        result = run_chat(
            model,
            user_text="hi",
            llm_options={"top_p": 0.5, "min_p": 0.05, "provider": {"sort": "price"}},
        )

        assert result.success, result.errors
        [body] = wire.bodies
        assert body == {
            "model": "mock",
            "messages": [{"role": "user", "content": "hi"}],
            "temperature": 0.5,
            "top_p": 0.5,
            "top_k": 20,
            "min_p": 0.05,
            "provider": {"order": ["c"], "allow_fallbacks": False, "sort": "price"},
        }
        assert result.value["request"] == body
        assert provider.llm_options_defaults == defaults

    def test_options_the_sdk_does_not_name_reach_the_top_level_of_the_body(
        self, model: LLMModel, wire: WireRecorder
    ) -> None:
        options = {"top_k": 40, "min_p": 0.1, "repetition_penalty": 1.05, "max_tokens": 50}

        result = run_chat(model, user_text="hi", llm_options=options)
        done_result(events_of(model, user_text="hi", llm_options=options))

        assert result.success, result.errors
        plain, streamed = wire.bodies
        for body in (plain, streamed):
            assert {k: body[k] for k in options} == options
            assert "extra_body" not in body
        assert streamed["stream"] is True
        assert streamed["stream_options"] == {"include_usage": True}
        assert "stream" not in plain

    @pytest.mark.parametrize(
        "options", [{"stream": True}, {"stream": False}, {"stream_options": {"include_usage": 1}}]
    )
    def test_request_may_not_choose_streaming(
        self, model: LLMModel, wire: WireRecorder, options: dict[str, Any]
    ) -> None:
        result = run_chat(model, user_text="hi", llm_options=options)
        streamed = only_error(events_of(model, user_text="hi", llm_options=options))

        for failed in (result, streamed):
            assert (failed.success, failed.code) == (False, "INVALID_INPUT")
            assert next(iter(options)) in failed.errors[0]
        assert wire.requests == []

    def test_model_and_messages_in_options_are_dropped(
        self, model: LLMModel, wire: WireRecorder
    ) -> None:
        result = run_chat(
            model,
            user_text="hi",
            llm_options={"model": "gpt-other", "messages": [{"role": "user", "content": "x"}]},
        )

        assert result.success, result.errors
        assert wire.bodies == [{"model": "mock", "messages": [{"role": "user", "content": "hi"}]}]

    def test_llm_options_must_be_a_mapping(self, model: LLMModel, wire: WireRecorder) -> None:
        result = run_chat(model, user_text="hi", llm_options=[("top_k", 1)])

        assert (result.success, result.code) == (False, "INVALID_INPUT")
        assert wire.requests == []


# --- messages and language policy ---------------------------------------------------------


class Ctx(enum.Enum):
    """Enum keys, the Python counterpart of the spec's symbol keys."""

    LANGUAGE_POLICY = "language_policy"
    ENABLED = "enabled"
    TARGET_LANG = "target_lang"


class TestMessages:
    def test_system_then_history_then_user_text_last(
        self, model: LLMModel, wire: WireRecorder
    ) -> None:
        history = [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "second"},
            {"role": "user", "content": "third"},
            {"role": "assistant", "content": "fourth"},
        ]

        result = run_chat(model, system="Be terse.", history=history, user_text="fifth")

        expected = [{"role": "system", "content": "Be terse."}, *history]
        expected.append({"role": "user", "content": "fifth"})
        assert result.success, result.errors
        assert result.value["request"]["messages"] == expected
        assert wire.bodies[0]["messages"] == expected
        assert re.fullmatch(
            mock_reply_pattern("fifth"), result.value["assistant_message"]["content"]
        )

    def test_history_alone_is_a_prompt(self, model: LLMModel, wire: WireRecorder) -> None:
        history = [{"role": "user", "content": "from history"}]

        result = run_chat(model, history=history)

        assert result.success, result.errors
        assert wire.bodies[0]["messages"] == history

    @pytest.mark.parametrize(
        "arguments",
        [
            {},
            {"user_text": ""},
            {"user_text": "  \n\t "},
            {"system": "You are helpful.", "user_text": " "},
            {"history": []},
        ],
    )
    def test_nothing_to_send_is_empty_prompt(
        self, model: LLMModel, wire: WireRecorder, arguments: dict[str, Any]
    ) -> None:
        result = run_chat(model, **arguments)
        streamed = only_error(events_of(model, **arguments))

        for failed in (result, streamed):
            assert (failed.success, failed.code) == (False, "EMPTY_PROMPT")
        assert wire.requests == []

    @pytest.mark.parametrize(
        "history",
        [
            [{"role": "wizard", "content": "x"}],
            ["just a string"],
            [{"role": "user", "content": 42}],
            "not a list",
        ],
    )
    def test_malformed_history_is_invalid_input(
        self, model: LLMModel, wire: WireRecorder, history: Any
    ) -> None:
        result = run_chat(model, history=history, user_text="hi")

        assert (result.success, result.code) == (False, "INVALID_INPUT")
        assert wire.requests == []


class TestLanguagePolicy:
    @pytest.mark.parametrize(
        ("target", "code"),
        [("zh-cn", "zh-CN"), ("zh-CN", "zh-CN"), ("ja", "ja-JP"), ("zh_tw", "zh-TW")],
    )
    def test_string_keys_add_an_instruction_naming_the_canonical_code(
        self, model: LLMModel, wire: WireRecorder, target: str, code: str
    ) -> None:
        context = {"language_policy": {"enabled": True, "target_lang": target}}

        result = run_chat(model, system="Be terse.", user_text="hi", context=context)

        assert result.success, result.errors
        system, instruction, user = wire.bodies[0]["messages"]
        assert system == {"role": "system", "content": "Be terse."}
        assert instruction["role"] == "system"
        assert f"({code})" in instruction["content"]
        assert user == {"role": "user", "content": "hi"}
        assert result.value["warnings"] == []

    def test_enum_keys_work_like_string_keys(self, model: LLMModel, wire: WireRecorder) -> None:
        context = {Ctx.LANGUAGE_POLICY: {Ctx.ENABLED: True, Ctx.TARGET_LANG: "zh-cn"}}

        result = run_chat(model, user_text="hi", context=context)

        assert result.success, result.errors
        instruction, user = wire.bodies[0]["messages"]
        assert instruction["role"] == "system"
        assert "zh-CN" in instruction["content"]
        assert user == {"role": "user", "content": "hi"}

    def test_unsupported_language_adds_nothing_and_warns(
        self, model: LLMModel, wire: WireRecorder
    ) -> None:
        context = {"language_policy": {"enabled": True, "target_lang": "fr-FR"}}

        result = run_chat(model, user_text="hi", context=context)

        assert result.success, result.errors
        assert wire.bodies[0]["messages"] == [{"role": "user", "content": "hi"}]
        [warning] = result.value["warnings"]
        assert "fr-FR" in warning

    def test_disabled_policy_adds_nothing(self, model: LLMModel, wire: WireRecorder) -> None:
        context = {"language_policy": {"enabled": False, "target_lang": "ja"}}

        result = run_chat(model, user_text="hi", context=context)

        assert wire.bodies[0]["messages"] == [{"role": "user", "content": "hi"}]
        assert result.value["warnings"] == []


# --- token budget -------------------------------------------------------------------------


class TestTokenBudget:
    """One token a word (WordEstimator), so every number below is exact."""

    SYSTEM = "one two three"
    USER = "four five six seven"

    def budget_model(
        self, server_url: str, *, provider_overhead: int = 3, **model_attributes: Any
    ) -> LLMModel:
        provider = mock_provider(server_url, message_overhead_tokens=provider_overhead)
        return mock_model(provider, **model_attributes)

    def test_too_long_reports_exact_numbers_and_sends_nothing(
        self, app: Flask, mock_api: MockAPI, wire: WireRecorder
    ) -> None:
        model = self.budget_model(mock_api.url, context_window_tokens=20)
        estimator = WordEstimator()

        result = run_chat(
            model,
            system=self.SYSTEM,
            user_text=self.USER,
            llm_options={"max_tokens": 10},
            context=words_context(estimator),
        )

        # 7 words + 2 messages × 3 inherited overhead = 13 > 20 − 10.
        assert (result.success, result.code) == (False, "PROMPT_TOO_LONG")
        assert result.value == {
            "estimated_tokens": 13,
            "max_tokens": 20,
            "reserve_tokens": 10,
            "limit_tokens": 10,
        }
        assert "13" in result.errors[0]
        assert "10" in result.errors[0]
        assert estimator.calls == [(self.SYSTEM, "mock"), (self.USER, "mock")]
        assert wire.requests == []

    def test_streaming_fails_the_same_way(
        self, app: Flask, mock_api: MockAPI, wire: WireRecorder
    ) -> None:
        model = self.budget_model(mock_api.url, context_window_tokens=20)

        result = only_error(
            events_of(
                model,
                user_text=self.USER,
                llm_options={"max_tokens": 17},
                context=words_context(WordEstimator()),
            )
        )

        assert result.code == "PROMPT_TOO_LONG"
        assert result.value["estimated_tokens"] == 4 + 3
        assert result.value["limit_tokens"] == 3
        assert wire.requests == []

    def test_a_prompt_exactly_at_the_limit_is_sent(
        self, app: Flask, mock_api: MockAPI, wire: WireRecorder
    ) -> None:
        model = self.budget_model(mock_api.url, context_window_tokens=23)

        result = run_chat(
            model,
            system=self.SYSTEM,
            user_text=self.USER,
            llm_options={"max_tokens": 10},
            context=words_context(WordEstimator()),
        )

        assert result.success, result.errors
        assert len(wire.requests) == 1

    def test_model_overhead_zero_overrides_the_provider(
        self, app: Flask, mock_api: MockAPI, wire: WireRecorder
    ) -> None:
        model = self.budget_model(mock_api.url, context_window_tokens=17, message_overhead_tokens=0)
        arguments = {
            "system": self.SYSTEM,
            "user_text": self.USER,
            "llm_options": {"max_tokens": 10},
            "context": words_context(WordEstimator()),
        }

        assert run_chat(model, **arguments).success
        model.message_overhead_tokens = None
        inherited = run_chat(model, **arguments)

        assert inherited.code == "PROMPT_TOO_LONG"
        assert inherited.value["estimated_tokens"] == 7 + 2 * 3
        assert len(wire.requests) == 1

    def test_model_overhead_overrides_the_provider(
        self, app: Flask, mock_api: MockAPI, wire: WireRecorder
    ) -> None:
        model = self.budget_model(mock_api.url, context_window_tokens=20, message_overhead_tokens=5)

        result = run_chat(
            model,
            system=self.SYSTEM,
            user_text=self.USER,
            context=words_context(WordEstimator()),
        )

        assert result.success, result.errors
        model.context_window_tokens = 16
        result = run_chat(
            model,
            system=self.SYSTEM,
            user_text=self.USER,
            context=words_context(WordEstimator()),
        )
        assert result.code == "PROMPT_TOO_LONG"
        assert result.value["estimated_tokens"] == 7 + 2 * 5

    @pytest.mark.parametrize(
        ("provider_max", "preset_max", "request_max", "reserve"),
        [
            (None, None, None, 0),
            (5, None, None, 5),
            (5, 8, None, 8),
            (5, 8, 12, 12),
            (None, None, 12, 12),
        ],
    )
    def test_reserve_comes_from_the_merged_max_tokens(
        self,
        app: Flask,
        mock_api: MockAPI,
        wire: WireRecorder,
        provider_max: int | None,
        preset_max: int | None,
        request_max: int | None,
        reserve: int,
    ) -> None:
        def max_tokens(value: int | None) -> dict[str, int]:
            return {} if value is None else {"max_tokens": value}

        provider = mock_provider(mock_api.url, llm_options_defaults=max_tokens(provider_max))
        model = mock_model(provider, context_window_tokens=30)
        make_preset(model, llm_options_overrides=max_tokens(preset_max))

        result = run_chat(
            model,
            user_text=" ".join(["word"] * 40),
            llm_options=max_tokens(request_max),
            context=words_context(WordEstimator()),
        )

        assert result.code == "PROMPT_TOO_LONG"
        assert result.value == {
            "estimated_tokens": 40,
            "max_tokens": 30,
            "reserve_tokens": reserve,
            "limit_tokens": 30 - reserve,
        }

    def test_reserve_beyond_the_window_leaves_a_limit_of_zero(
        self, app: Flask, mock_api: MockAPI, wire: WireRecorder
    ) -> None:
        model = self.budget_model(mock_api.url, provider_overhead=0, context_window_tokens=5)

        result = run_chat(
            model,
            user_text="one",
            llm_options={"max_tokens": 9},
            context=words_context(WordEstimator()),
        )

        assert result.code == "PROMPT_TOO_LONG"
        assert result.value == {
            "estimated_tokens": 1,
            "max_tokens": 5,
            "reserve_tokens": 9,
            "limit_tokens": 0,
        }
        assert wire.requests == []

    def test_unlimited_window_never_fails_and_estimates_nothing(
        self, app: Flask, mock_api: MockAPI, wire: WireRecorder
    ) -> None:
        model = self.budget_model(mock_api.url, provider_overhead=1000, context_window_tokens=0)
        estimator = WordEstimator()

        result = run_chat(
            model,
            user_text="word " * 20_000,
            llm_options={"max_tokens": 10**9},
            context=words_context(estimator),
        )

        assert result.success, result.errors
        assert estimator.calls == []
        assert len(wire.requests) == 1

    def test_model_hint_from_the_context_reaches_the_estimator(
        self, app: Flask, mock_api: MockAPI, wire: WireRecorder
    ) -> None:
        model = self.budget_model(mock_api.url, context_window_tokens=100)
        estimator = WordEstimator()

        result = run_chat(
            model, user_text="hi", context=words_context(estimator, model_hint="gpt-4o")
        )

        assert result.success, result.errors
        assert estimator.calls == [("hi", "gpt-4o")]

    def test_default_estimator_counts_with_tiktoken(
        self, app: Flask, mock_api: MockAPI, wire: WireRecorder
    ) -> None:
        model = self.budget_model(mock_api.url, provider_overhead=0, context_window_tokens=50)
        cl100k = load_encoding("cl100k_base")
        prompt = "hello " * 60

        result = run_chat(model, user_text=prompt)

        assert result.code == "PROMPT_TOO_LONG"
        assert result.value["estimated_tokens"] == len(cl100k.encode_ordinary(prompt)) > 50

    @pytest.mark.parametrize("max_tokens", [-1, "10", True, 2.5])
    def test_malformed_max_tokens_is_invalid_input(
        self, model: LLMModel, wire: WireRecorder, max_tokens: Any
    ) -> None:
        result = run_chat(model, user_text="hi", llm_options={"max_tokens": max_tokens})

        assert result.code == "INVALID_INPUT"
        assert wire.requests == []


# --- capability preflight -----------------------------------------------------------------


def capable_model(server_url: str, **capabilities: bool) -> LLMModel:
    """A model whose supports_* flags are all off except those given."""
    flags = {"supports_streaming": False, **capabilities}
    return mock_model(mock_provider(server_url), **flags)


class TestCapabilityPreflight:
    @pytest.mark.parametrize(
        ("capabilities", "options", "stream", "reason"),
        [
            ({}, {}, True, "streaming"),
            ({}, {"tools": TOOLS}, False, "tool calling"),
            (
                {"supports_response_format_json_schema": True},
                {"response_format": {"type": "json_object"}},
                False,
                "json_object",
            ),
            (
                {"supports_response_format_json_object": True},
                {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
                False,
                "json_schema",
            ),
            (
                {"supports_tool_calling": True, "supports_response_format_json_object": True},
                {"tools": TOOLS, "response_format": {"type": "json_object"}},
                False,
                "tools (set by the call) and response_format (set by the call) cannot be used "
                "together",
            ),
            (
                {"supports_streaming": True, "supports_tool_calling": True},
                {"tools": TOOLS},
                True,
                "streaming",
            ),
            (
                {"supports_streaming": True, "supports_response_format_json_object": True},
                {"response_format": {"type": "json_object"}},
                True,
                "streaming",
            ),
            ({}, {"response_format": {"type": "xml"}}, False, "response_format"),
        ],
    )
    def test_what_the_model_cannot_do_is_rejected_before_sending(
        self,
        app: Flask,
        mock_api: MockAPI,
        capabilities: dict[str, bool],
        options: dict[str, Any],
        stream: bool,
        reason: str,
    ) -> None:
        model = capable_model(mock_api.url, **capabilities)
        client = CapturingClient()

        arguments = {"user_text": "hi", "llm_options": options, "client": client}
        if stream:
            result = only_error(events_of(model, **arguments))
        else:
            result = run_chat(model, **arguments)

        assert (result.success, result.code) == (False, "INVALID_INPUT")
        assert reason in result.errors[0]
        assert client.calls == []

    @pytest.mark.parametrize(
        ("capabilities", "options", "expected"),
        [
            # Not supported: dropped, whatever else is asked.
            ({"supports_tool_calling": True}, {"tools": TOOLS, "parallel_tool_calls": True}, None),
            ({}, {"parallel_tool_calls": False}, None),
            # Supported with tools: defaults to false, an explicit value stays.
            (
                {"supports_tool_calling": True, "supports_parallel_tool_calls": True},
                {"tools": TOOLS},
                False,
            ),
            (
                {"supports_tool_calling": True, "supports_parallel_tool_calls": True},
                {"tools": TOOLS, "parallel_tool_calls": True},
                True,
            ),
            # Supported with response_format: forced false.
            (
                {
                    "supports_response_format_json_object": True,
                    "supports_parallel_tool_calls": True,
                },
                {"response_format": {"type": "json_object"}, "parallel_tool_calls": True},
                False,
            ),
            # Supported, neither tools nor response_format: left as asked.
            ({"supports_parallel_tool_calls": True}, {"parallel_tool_calls": True}, True),
            ({"supports_parallel_tool_calls": True}, {}, None),
        ],
    )
    def test_parallel_tool_calls(
        self,
        app: Flask,
        mock_api: MockAPI,
        capabilities: dict[str, bool],
        options: dict[str, Any],
        expected: bool | None,
    ) -> None:
        model = capable_model(mock_api.url, **capabilities)
        client = CapturingClient()

        result = run_chat(model, user_text="hi", llm_options=options, client=client)

        assert result.success, result.errors
        [sent] = client.calls
        assert result.value["request"].get("parallel_tool_calls") == expected
        assert sent.get("parallel_tool_calls") == expected
        for key in ("tools", "response_format"):
            assert sent.get(key) == options.get(key)

    def test_supported_capabilities_pass(self, app: Flask, mock_api: MockAPI) -> None:
        model = capable_model(
            mock_api.url,
            supports_tool_calling=True,
            supports_response_format_json_object=True,
            supports_response_format_json_schema=True,
        )
        schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}
        client = CapturingClient()

        results = [
            run_chat(model, user_text="hi", llm_options={"tools": TOOLS}, client=client),
            run_chat(model, user_text="hi", llm_options={"response_format": schema}, client=client),
            run_chat(
                model,
                user_text="hi",
                llm_options={"response_format": {"type": "json_object"}},
                client=client,
            ),
        ]

        assert [r.success for r in results] == [True, True, True]
        assert [call.get("tools") for call in client.calls] == [TOOLS, None, None]
        assert client.calls[1]["response_format"] == schema


# --- success ------------------------------------------------------------------------------


class TestSuccess:
    def test_result_shape(self, model: LLMModel, wire: WireRecorder) -> None:
        preset = make_preset(model, llm_options_overrides={"temperature": 0.0})

        result = run_chat(model, system="Be terse.", user_text=LONG_PROMPT)

        assert result.success, result.errors
        assert (result.code, result.errors) == (None, [])
        value = result.value
        assert value["llm_model"] is model
        assert value["preset"].id == preset.id
        [body] = wire.bodies
        assert value["request"] == body
        message = value["assistant_message"]
        assert set(message) == {"role", "content"}
        assert message["role"] == "assistant"
        assert re.fullmatch(mock_reply_pattern(LONG_PROMPT), message["content"])
        assert value["usage"] == mock_usage(body["messages"], message["content"])
        assert value["finish_reason"] == "stop"
        assert value["timings"]["total_ms"] > 0

    def test_provider_client_sends_the_key_and_headers(
        self, app: Flask, mock_api: MockAPI, wire: WireRecorder
    ) -> None:
        provider = mock_provider(
            mock_api.url, api_key="sk-live-0123456789", headers={"X-Title": "ModelDesk"}
        )
        keyless = mock_provider(mock_api.url, name="Keyless")

        assert run_chat(mock_model(provider), user_text="hi").success
        assert run_chat(mock_model(keyless, key="keyless"), user_text="hi").success

        with_key, without_key = wire.requests
        assert with_key.path == MOCK_PREFIX + "/chat/completions"
        assert with_key.headers["authorization"] == "Bearer sk-live-0123456789"
        assert with_key.headers["x-title"] == "ModelDesk"
        assert without_key.headers["authorization"] == "Bearer no-key"
        assert "x-title" not in without_key.headers

    def test_header_values_stored_encrypted_go_on_the_wire_as_typed(
        self, app: Flask, db: Any, mock_api: MockAPI, wire: WireRecorder
    ) -> None:
        headers = {
            "X-Title": "my-app-title",
            "Ocp-Apim-Subscription-Key": "ocp-subscription-31415",
            "HTTP-Referer": "https://app.example/path?x=1",
        }
        provider = mock_provider(mock_api.url, headers=headers)
        db.session.expire_all()  # the values come back from the database, decrypted

        loaded = db.session.get(LLMProvider, provider.id)
        assert run_chat(mock_model(loaded), user_text="hi").success

        [sent] = wire.requests
        assert {name.lower(): value for name, value in headers.items()}.items() <= (
            sent.headers.items()
        )

    def test_an_unreadable_header_value_is_not_sent(
        self, app: Flask, db: Any, mock_api: MockAPI, wire: WireRecorder
    ) -> None:
        provider = mock_provider(mock_api.url, headers={"X-Api-Key": "xk-old-key-123456"})
        original_key = app.config["MODELDESK_ENCRYPTION_KEY"]
        app.config["MODELDESK_ENCRYPTION_KEY"] = "a-different-encryption-key"
        db.session.expire_all()
        unreadable = db.session.get(LLMProvider, provider.id)

        assert run_chat(mock_model(unreadable), user_text="hi").success

        [sent] = wire.requests
        assert "x-api-key" not in sent.headers
        assert "xk-old-key" not in repr(sent)
        app.config["MODELDESK_ENCRYPTION_KEY"] = original_key

    @pytest.mark.parametrize("llm_model", [None, "mock", 3])
    def test_not_a_model_is_invalid_input(self, app: Flask, llm_model: Any) -> None:
        result = run_chat(llm_model, user_text="hi")
        streamed = only_error(events_of(llm_model, user_text="hi"))

        assert result.code == streamed.code == "INVALID_INPUT"


# --- upstream failures --------------------------------------------------------------------


class TestUpstreamFailures:
    def test_refused_connection(self, app: Flask) -> None:
        model = mock_model(mock_provider(closed_port_url()))

        result = run_chat(model, user_text="hi")
        streamed = only_error(events_of(model, user_text="hi"))

        for failed in (result, streamed):
            assert failed.code == "LLM_REQUEST_FAILED"
            assert failed.errors[0].startswith("the connection to the provider failed: ")
            assert "refused" in failed.errors[0].lower()

    @pytest.mark.parametrize("status", [429, 500, 503])
    def test_http_error_status(
        self, app: Flask, mock_api: MockAPI, wire: WireRecorder, status: int
    ) -> None:
        model = faulty_model(mock_api.url, f"status={status}")

        result = run_chat(model, user_text="hi")
        events = events_of(model, user_text="hi")

        streamed = only_error(events)
        assert len(events) == 1
        for failed in (result, streamed):
            assert failed.code == "LLM_REQUEST_FAILED"
            assert failed.errors == [
                f"the provider answered HTTP {status}: mock fault: HTTP {status}"
            ]
        # No retries: one request each.
        assert len(wire.requests) == 2

    def test_slow_first_byte_times_out(self, app: Flask, live_server: Any) -> None:
        # Its own server: the mock sleeps on after the client gave up.
        app.config["LLM_REQUEST_TIMEOUT"] = 0.3
        init_llm_settings(app)
        model = faulty_model(live_server.url, "delay=10")

        started = time.monotonic()
        result = run_chat(model, user_text="hi")
        events = events_of(model, user_text="hi")
        elapsed = time.monotonic() - started

        streamed = only_error(events)
        assert len(events) == 1
        for failed in (result, streamed):
            assert failed.code == "LLM_REQUEST_FAILED"
            assert "timeout" in failed.errors[0]
        # Two calls of ~0.3 s each; waiting out the mock's delay would take 10 s.
        assert elapsed < 6.0

    def test_stream_cut_midway_keeps_the_partial_content(
        self, app: Flask, mock_api: MockAPI
    ) -> None:
        model = faulty_model(mock_api.url, "cut=3")

        events = events_of(model, user_text=LONG_PROMPT)

        result = only_error(events)
        deltas = [e.content for e in events if e.type == "delta"]
        assert len(deltas) == 3
        assert result.code == "LLM_REQUEST_FAILED"
        assert result.value["partial_content"] == "".join(deltas)
        assert mock_reply_body(LONG_PROMPT).startswith("".join(deltas))
        assert result.errors == [
            "the connection to the provider failed: peer closed connection without sending "
            "complete message body (incomplete chunked read)"
        ]
        assert result.value["timings"]["ttft_ms"] > 0
        assert stream_outcomes(mock_api.record) == ["cut"]

    def test_in_band_error_event(self, app: Flask, mock_api: MockAPI) -> None:
        model = faulty_model(mock_api.url, "error=2")

        events = events_of(model, user_text=LONG_PROMPT)

        result = only_error(events)
        assert [e.type for e in events] == ["delta", "delta", "error"]
        assert result.errors == ["the provider reported an error: mock fault: in-band error"]
        assert result.value["partial_content"] == "".join(e.content for e in events[:2])

    def test_stream_faults_do_not_affect_a_plain_request(
        self, app: Flask, mock_api: MockAPI
    ) -> None:
        result = run_chat(faulty_model(mock_api.url, "cut=1"), user_text="hi")

        assert result.success, result.errors


class TestSecrets:
    def secret_provider(self, base_url: str) -> LLMProvider:
        return mock_provider(base_url, api_key=API_KEY_SECRET, headers={"X-Api-Key": HEADER_SECRET})

    def test_secrets_echoed_by_the_provider_never_reach_the_error(
        self, app: Flask, mock_api: MockAPI, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        received: list[dict[str, str]] = []
        monkeypatch.setattr(mock_api.app, "wsgi_app", echo_credentials(received))
        model = mock_model(self.secret_provider(mock_api.url))

        failures = [
            run_chat(model, user_text="hi"),
            only_error(events_of(model, user_text="hi")),
        ]

        # The provider did get (and repeat) both secrets …
        sent = {"authorization": f"Bearer {API_KEY_SECRET}", "x-api-key": HEADER_SECRET}
        assert received == [sent, sent]
        for failed in failures:
            assert failed.code == "LLM_REQUEST_FAILED"
            [message] = failed.errors
            # … and the error still says what happened, without them.
            assert "HTTP 401" in message
            assert API_KEY_SECRET not in message
            assert HEADER_SECRET not in message
            assert "[redacted]" in message

    def test_refused_connection_error_has_no_secrets(self, app: Flask) -> None:
        model = mock_model(self.secret_provider(closed_port_url()))

        for failed in (
            run_chat(model, user_text="hi"),
            only_error(events_of(model, user_text="hi")),
        ):
            assert failed.code == "LLM_REQUEST_FAILED"
            assert API_KEY_SECRET not in failed.errors[0]
            assert HEADER_SECRET not in failed.errors[0]

    @pytest.mark.parametrize(
        "error",
        [
            RuntimeError(f"boom: key={API_KEY_SECRET} header={HEADER_SECRET}"),
            openai.APIStatusError(
                f"Error code: 401 - {API_KEY_SECRET}",
                response=httpx2.Response(401, request=httpx2.Request("POST", "http://x")),
                body={"message": f"bad key {API_KEY_SECRET} / {HEADER_SECRET}"},
            ),
            openai.APIError(
                f"in-band: {HEADER_SECRET} {API_KEY_SECRET}",
                request=httpx2.Request("POST", "http://x"),
                body=None,
            ),
        ],
    )
    def test_describe_upstream_error_removes_secrets(self, error: BaseException) -> None:
        message = describe_upstream_error(error, [API_KEY_SECRET, HEADER_SECRET])

        assert API_KEY_SECRET not in message
        assert HEADER_SECRET not in message
        assert message.count("[redacted]") == 2

    def test_describe_upstream_error_removes_secrets_from_the_cause(self) -> None:
        error = openai.APIConnectionError(request=httpx2.Request("POST", "http://x"))
        error.__cause__ = OSError(f"proxy said Authorization: Bearer {API_KEY_SECRET}")

        message = describe_upstream_error(error, [API_KEY_SECRET])

        assert message.startswith("the connection to the provider failed: proxy said")
        assert API_KEY_SECRET not in message

    def test_any_bearer_token_is_masked(self) -> None:
        message = describe_upstream_error(RuntimeError("Authorization: Bearer abcdef123456"), [])

        assert "abcdef123456" not in message
        assert "Bearer [redacted]" in message
