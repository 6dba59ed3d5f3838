"""The mock's tool calls, JSON modes and limited model ids, through the openai SDK over a
real socket (the shared mock server of tests/support/mock_fixtures.py)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.support.mock_api import MOCK_PREFIX, MockAPI, user
from webapp.mock_llm.replies import sample_for_schema

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}},
            "required": ["zone"],
        },
    },
}
SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "population": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "where": {
            "type": "object",
            "properties": {"lat": {"type": "number"}},
            "required": ["lat"],
        },
        "unused": {"type": "string"},
    },
    "required": ["city", "population", "tags", "where"],
}


@pytest.fixture
def sdk(mock_api: MockAPI) -> openai.OpenAI:
    return openai.OpenAI(base_url=mock_api.url + MOCK_PREFIX, api_key="x", max_retries=0)


def create(sdk: openai.OpenAI, model: str = "mock", **options: Any) -> Any:
    return sdk.chat.completions.create(
        model=model, messages=[user("What is the weather in Paris?")], **options
    )


def test_offered_tool_is_called_with_json_arguments_for_its_required_parameters(
    sdk: openai.OpenAI,
) -> None:
    response = create(sdk, tools=[WEATHER, TIME])
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "mock", "days": 1}


def test_parallel_tool_calls_call_the_first_two_tools_in_one_turn(sdk: openai.OpenAI) -> None:
    response = create(sdk, tools=[WEATHER, TIME], parallel_tool_calls=True)
    calls = response.choices[0].message.tool_calls
    assert [call.function.name for call in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[1].function.arguments) == {"zone": "UTC"}
    assert calls[0].id != calls[1].id


def test_tool_choice_none_gets_a_text_reply(sdk: openai.OpenAI) -> None:
    response = create(sdk, tools=[WEATHER], tool_choice="none")
    assert response.choices[0].message.tool_calls is None
    assert response.choices[0].message.content.startswith("Mock response (model=mock)")


def test_streamed_tool_calls_arrive_as_openai_streams_them(sdk: openai.OpenAI) -> None:
    chunks = list(create(sdk, tools=[WEATHER, TIME], parallel_tool_calls=True, stream=True))
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for delta in chunk.choices[0].delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"name": "", "arguments": ""})
            if delta.function.name:
                call["name"] = delta.function.name
            call["arguments"] += delta.function.arguments or ""
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert len(chunks) > 5  # the arguments come in pieces
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "mock", "days": 1}
    assert json.loads(calls[1]["arguments"]) == {"zone": "UTC"}


def test_json_object_mode_answers_a_json_object(sdk: openai.OpenAI) -> None:
    response = create(sdk, response_format={"type": "json_object"}, max_tokens=2)
    reply = json.loads(response.choices[0].message.content)
    assert reply["reply"].startswith("Mock response (model=mock): What is the weather")


def test_json_schema_mode_answers_an_object_satisfying_the_schema(sdk: openai.OpenAI) -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA}}
    response = create(sdk, response_format=response_format)
    assert json.loads(response.choices[0].message.content) == {
        "city": "mock",
        "population": 1,
        "tags": ["mock", "mock"],
        "where": {"lat": 1},
    }


def test_sample_for_schema_follows_const_enum_and_nullable_types() -> None:
    assert sample_for_schema({"const": 7}) == 7
    assert sample_for_schema({"enum": ["b", "a"]}) == "b"
    assert sample_for_schema({"type": ["null", "boolean"]}) is True
    assert sample_for_schema({"type": "object"}) == {}


@pytest.mark.parametrize(
    ("model", "options", "message", "param"),
    [
        ("mock-basic", {"tools": [WEATHER]}, "tools are not supported by this model", "tools"),
        (
            "mock-basic",
            {"response_format": {"type": "json_object"}},
            "response_format json_object is not supported by this model",
            "response_format",
        ),
        (
            "mock-lite",
            {"stream": True},
            "streaming is not supported by this model",
            "stream",
        ),
        (
            "mock-lite",
            {"tools": [WEATHER, TIME], "parallel_tool_calls": True},
            "parallel_tool_calls is not supported by this model",
            "parallel_tool_calls",
        ),
        (
            "mock-lite",
            {"response_format": {"type": "json_schema", "json_schema": {"schema": SCHEMA}}},
            "response_format json_schema is not supported by this model",
            "response_format",
        ),
    ],
)
def test_limited_mock_models_answer_400_naming_what_they_lack(
    sdk: openai.OpenAI, model: str, options: dict[str, Any], message: str, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        create(sdk, model=model, **options)
    assert raised.value.status_code == 400
    assert raised.value.body == {
        "message": message,
        "type": "invalid_request_error",
        "param": param,
    }


def test_limited_mock_models_still_do_what_they_have(sdk: openai.OpenAI) -> None:
    chunks = list(create(sdk, model="mock-basic", stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    lite = create(sdk, model="mock-lite", tools=[WEATHER, TIME])
    assert len(lite.choices[0].message.tool_calls) == 1
    json_reply = create(sdk, model="mock-lite", response_format={"type": "json_object"})
    assert json.loads(json_reply.choices[0].message.content)
