"""The option merge names the layer that set each option (provider defaults, preset, the
call), and every option or capability error says which (webapp.llm.prepare, no database)."""

from __future__ import annotations

from typing import Any

import pytest

from webapp.llm.prepare import prepare_chat, preview_request
from webapp.llm.specs import ModelSpec, PresetSpec, ProviderSpec

JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {}}}]


def model(provider_defaults: dict[str, Any] | None = None, **attributes: Any) -> ModelSpec:
    provider = ProviderSpec(
        name="Mock (Local)",
        endpoint="http://127.0.0.1:9/mock_llm/v1/",
        api_key="sk-secret",
        headers={"X-Title": "secret-title"},
        llm_options_defaults=provider_defaults or {},
    )
    strict = PresetSpec(id=1, key="strict", name="Strict", llm_options_overrides={})
    values: dict[str, Any] = {"id": 1, "model": "mock", "name": "Mock", "provider": provider}
    return ModelSpec(**{**values, "presets": (strict,), **attributes})


def with_preset(spec: ModelSpec, overrides: dict[str, Any]) -> ModelSpec:
    preset = PresetSpec(id=1, key="strict", name="Strict", llm_options_overrides=overrides)
    return ModelSpec(**{**spec.__dict__, "presets": (preset,)})


def errors_of(spec: ModelSpec, stream: bool = False, **inputs: Any) -> list[str]:
    result = prepare_chat(spec, client=None, stream=stream, user_text="hi", **inputs)
    assert getattr(result, "code", None) == "INVALID_INPUT", result
    return result.errors


def test_a_preset_option_the_model_cannot_do_names_the_preset() -> None:
    spec = with_preset(model(), {"response_format": JSON_SCHEMA})
    assert errors_of(spec, preset_key="strict") == [
        'response_format json_schema (set by preset "strict") is not supported by Mock'
    ]


@pytest.mark.parametrize(
    ("defaults", "preset", "call", "stream", "expected"),
    [
        (
            {"tools": TOOLS},
            {},
            None,
            False,
            'tools (set by provider "Mock (Local)" defaults): Mock does not support tool calling',
        ),
        (
            {},
            {},
            {"response_format": {"type": "json_object"}},
            False,
            "response_format json_object (set by the call) is not supported by Mock",
        ),
        ({}, {}, None, True, "streaming (set by the call) is not supported by Mock"),
        (
            {},
            {"max_tokens": -1},
            None,
            False,
            'max_tokens (set by preset "strict") must be a non-negative integer',
        ),
        (
            {},
            {},
            {"response_format": {"type": "yaml"}},
            False,
            "response_format (set by the call): its type must be text, json_object or json_schema",
        ),
        ({}, {}, {"stream": True}, False, "the call's llm_options may not set stream"),
    ],
)
def test_errors_name_the_option_and_its_layer(
    defaults: dict[str, Any],
    preset: dict[str, Any],
    call: dict[str, Any] | None,
    stream: bool,
    expected: str,
) -> None:
    spec = with_preset(model(defaults), preset)
    assert errors_of(spec, stream=stream, preset_key="strict", llm_options=call) == [expected]


def test_combination_errors_name_both_layers() -> None:
    capable = model(
        {"tools": TOOLS},
        supports_tool_calling=True,
        supports_response_format_json_object=True,
        supports_streaming=True,
    )
    spec = with_preset(capable, {"response_format": {"type": "json_object"}})
    assert errors_of(spec, preset_key="strict") == [
        'tools (set by provider "Mock (Local)" defaults) and response_format (set by preset '
        '"strict") cannot be used together'
    ]
    assert errors_of(capable, stream=True) == [
        "streaming (set by the call) cannot be combined with tools (set by provider "
        '"Mock (Local)" defaults)'
    ]


def test_a_nested_option_merged_from_two_layers_names_both() -> None:
    spec = with_preset(model(), {"response_format": {"type": "json_schema"}})
    errors = errors_of(spec, preset_key="strict", llm_options={"response_format": JSON_SCHEMA})
    assert errors == [
        'response_format json_schema (set by preset "strict" and the call) is not supported by Mock'
    ]


def test_preview_request_masks_every_header_and_joins_the_url() -> None:
    spec = with_preset(model({"temperature": 0.2}), {"max_tokens": 5})

    result = preview_request(spec, user_text="hi", preset_key="strict")

    assert result.success, result.errors
    assert result.value["url"] == "http://127.0.0.1:9/mock_llm/v1/chat/completions"
    assert result.value["headers"] == {
        "Authorization": "[redacted]",
        "Content-Type": "application/json",
        "X-Title": "[redacted]",
    }
    assert result.value["body"] == {
        "model": "mock",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.2,
        "max_tokens": 5,
    }
    budget = result.value["budget"]
    assert (budget["max_tokens"], budget["reserve_tokens"], budget["limit_tokens"]) == (0, 5, 0)
    assert budget["estimated_tokens"] > 0
