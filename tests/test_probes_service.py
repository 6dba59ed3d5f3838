"""Capability probes (webapp.services.probes over webapp.llm.probe): the mock's models, which
answer truthfully, and stub providers that ignore features, fail or stay silent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from tests.support.app import LiveServer
from tests.support.factories import make_model, make_provider
from tests.support.mock_api import MockAPI, mock_model, mock_provider
from tests.support.upstreams import StubUpstream
from webapp.llm.probe import CAPABILITY_COLUMNS, PROBE_MAX_TOKENS, schema_errors
from webapp.models import LLMModel
from webapp.services.probes import apply_observed, probe_model

ALL_FALSE = dict.fromkeys(CAPABILITY_COLUMNS, False)


def serve(stub: StubUpstream) -> Iterator[LiveServer]:
    server = LiveServer(stub).start()
    try:
        yield server
    finally:
        stub.released.set()
        server.stop()


def stub_model(server: LiveServer, **attributes: Any) -> LLMModel:
    provider = make_provider(name="Stub", base_url=server.url, api_prefix="/v1")
    return make_model(provider, model="stub-1", name="Stub 1", **attributes)


def test_mock_model_is_observed_to_do_everything(app: Flask, db: Any, mock_api: MockAPI) -> None:
    model = mock_model(mock_provider(mock_api.url))

    report = probe_model(model)

    assert report.observed == dict.fromkeys(CAPABILITY_COLUMNS, True), report.evidence
    evidence = report.evidence
    assert evidence["supports_streaming"].startswith("the reply streamed in ")
    assert evidence["supports_tool_calling"] == (
        'it called get_weather with valid JSON arguments {"city": "mock"}'
    )
    assert evidence["supports_parallel_tool_calls"] == (
        "it made 2 tool calls in one turn (get_weather, get_local_time)"
    )
    assert evidence["supports_response_format_json_schema"] == (
        'the reply validated against the schema: {"city": "mock", "population": 1}'
    )
    # Five small requests, one per capability, each with a small max_tokens.
    bodies = mock_api.wire.bodies
    assert len(bodies) == 5
    assert {body["max_tokens"] for body in bodies} == {PROBE_MAX_TOKENS}
    assert sum(bool(body.get("stream")) for body in bodies) == 1
    assert [body.get("parallel_tool_calls") for body in bodies if body.get("tools")].count(
        True
    ) == 1


def test_probing_changes_no_flag_and_records_when(app: Flask, db: Any, mock_api: MockAPI) -> None:
    model = mock_model(mock_provider(mock_api.url))
    before = model.capabilities

    probe_model(model)

    db.session.expire_all()
    stored = db.session.get(LLMModel, model.id)
    assert stored.capabilities == before
    assert datetime.now(UTC) - stored.capabilities_probed_at < timedelta(seconds=30)


def test_probes_go_around_the_capability_preflight(app: Flask, db: Any, mock_api: MockAPI) -> None:
    # The flags say no to everything; the probes still ask, since they test the flags.
    model = mock_model(mock_provider(mock_api.url), **ALL_FALSE)

    report = probe_model(model)

    assert all(report.observed.values())


def test_mock_basic_refuses_tools_and_json_modes_naming_them(
    app: Flask, db: Any, mock_api: MockAPI
) -> None:
    model = mock_model(mock_provider(mock_api.url), model="mock-basic", key="mock-basic")

    report = probe_model(model)

    assert report.observed == {
        "supports_streaming": True,
        "supports_tool_calling": False,
        "supports_response_format_json_object": False,
        "supports_response_format_json_schema": False,
        "supports_parallel_tool_calls": False,
    }
    outcomes = {o.column: o.outcome for o in report.observations}
    assert outcomes["supports_tool_calling"] == "refused"
    assert report.evidence["supports_tool_calling"] == (
        "refused: the provider answered HTTP 400: tools are not supported by this model"
    )
    assert report.evidence["supports_response_format_json_object"] == (
        "refused: the provider answered HTTP 400: "
        "response_format json_object is not supported by this model"
    )


def test_mock_lite_refuses_streaming_parallel_calls_and_json_schema(
    app: Flask, db: Any, mock_api: MockAPI
) -> None:
    model = mock_model(mock_provider(mock_api.url), model="mock-lite", key="mock-lite")

    report = probe_model(model)

    assert report.observed == {
        "supports_streaming": False,
        "supports_tool_calling": True,
        "supports_response_format_json_object": True,
        "supports_response_format_json_schema": False,
        "supports_parallel_tool_calls": False,
    }
    assert {o.outcome for o in report.observations if o.observed is False} == {"refused"}
    assert "parallel_tool_calls is not supported" in report.evidence["supports_parallel_tool_calls"]


@pytest.fixture
def ignoring_upstream() -> Iterator[tuple[LiveServer, StubUpstream]]:
    stub = StubUpstream({"stream": "one_piece", "tools": "text", "response_format": "text"})
    yield from ((server, stub) for server in serve(stub))


def test_a_provider_that_ignores_features_is_observed_as_ignoring_them(
    app: Flask, db: Any, ignoring_upstream: tuple[LiveServer, StubUpstream]
) -> None:
    server, _ = ignoring_upstream
    model = stub_model(server)

    report = probe_model(model)

    assert report.observed == ALL_FALSE
    assert {o.outcome for o in report.observations} == {"ignored"}
    evidence = report.evidence
    assert evidence["supports_streaming"] == (
        'ignored: the reply came in 1 piece(s), not streamed: "Sure! Paris is the capital of '
        'France and it is sunny there today."'
    )
    assert evidence["supports_tool_calling"].startswith(
        'ignored: it answered with text instead of a tool call: "Sure! Paris'
    )
    assert evidence["supports_response_format_json_object"].startswith(
        'ignored: the content is not JSON: "Sure!'
    )
    assert evidence["supports_response_format_json_schema"].startswith(
        "ignored: the content is not JSON"
    )


def test_timeouts_server_errors_and_unrelated_refusals_tell_nothing(app: Flask, db: Any) -> None:
    stub = StubUpstream({"stream": "hang", "tools": "500", "response_format": "401"})
    for server in serve(stub):
        model = stub_model(server)
        report = probe_model(model, time_limit=0.5)

    assert report.observed == dict.fromkeys(CAPABILITY_COLUMNS, None)
    assert {o.outcome for o in report.observations} == {"unknown"}
    evidence = report.evidence
    assert evidence["supports_streaming"] == (
        "could not tell: the provider did not answer in time (timeout)"
    )
    assert evidence["supports_tool_calling"] == (
        "could not tell: the provider answered HTTP 500: internal error"
    )
    assert evidence["supports_response_format_json_object"] == (
        "could not tell: the provider answered HTTP 401: invalid api key "
        "(the refusal does not name this feature)"
    )


def test_a_reply_cut_at_max_tokens_tells_nothing_and_secrets_are_masked(
    app: Flask, db: Any
) -> None:
    stub = StubUpstream({"stream": "stream", "tools": "length", "response_format": "echo_auth"})
    for server in serve(stub):
        model = stub_model(server)
        model.llm_provider.api_key = "sk-probe-SECRET-123456"
        db.session.commit()
        report = probe_model(model)

    assert report.observed["supports_tool_calling"] is None
    assert report.evidence["supports_tool_calling"] == (
        "could not tell: the reply stopped at the 64-token limit before it was complete"
    )
    assert report.observed["supports_response_format_json_object"] is False
    evidence = report.evidence["supports_response_format_json_object"]
    assert evidence == 'ignored: the content is not JSON: "You sent Bearer [redacted]"'


def test_probes_run_concurrently(app: Flask, db: Any) -> None:
    stub = StubUpstream(dict.fromkeys(("stream", "tools", "response_format"), "hang"))
    for server in serve(stub):
        report = probe_model(stub_model(server), time_limit=1.0)

    assert report.observed == dict.fromkeys(CAPABILITY_COLUMNS, None)
    assert len(stub.bodies) == 5
    # All five waited on the provider at once: one after another, one would be waiting.
    assert stub.most_hanging == 5


def test_apply_changes_only_the_flags_observed_true_or_false(app: Flask, db: Any) -> None:
    provider = make_provider()
    model = make_model(provider, supports_tool_calling=True, supports_parallel_tool_calls=True)

    changed = apply_observed(
        model,
        {
            "supports_streaming": True,
            "supports_tool_calling": None,
            "supports_response_format_json_object": False,
            "supports_response_format_json_schema": None,
            "supports_parallel_tool_calls": False,
        },
    )

    assert changed == ["supports_streaming", "supports_parallel_tool_calls"]
    db.session.expire_all()
    stored = db.session.scalars(select(LLMModel)).one()
    assert stored.capabilities == {
        "supports_tool_calling": True,
        "supports_response_format_json_object": False,
        "supports_response_format_json_schema": False,
        "supports_streaming": True,
        "supports_parallel_tool_calls": False,
    }


def test_schema_check_names_what_is_wrong() -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    assert schema_errors({"city": "Paris", "population": 2}, schema) == []
    assert schema_errors({"city": "Paris", "population": True, "x": 1}, schema) == [
        "$.x is not allowed",
        "$.population is not an integer",
    ]
    assert schema_errors({"population": 2.5}, schema) == [
        "$.city is missing",
        "$.population is not an integer",
    ]
    assert schema_errors(json.loads("[1]"), schema) == ["$ is not an object"]
