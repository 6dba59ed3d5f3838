"""`flask models probe MODEL [--json] [--apply]`."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask
from flask.testing import FlaskCliRunner

from tests.support.app import LiveServer
from tests.support.factories import make_model, make_provider
from tests.support.mock_api import MockAPI, mock_model, mock_provider
from tests.support.upstreams import StubUpstream
from webapp.llm.probe import CAPABILITY_COLUMNS
from webapp.models import LLMModel


def test_json_has_the_five_columns_and_a_sentence_of_evidence_each(
    app: Flask, runner: FlaskCliRunner, mock_api: MockAPI
) -> None:
    mock_model(mock_provider(mock_api.url), model="mock-basic", key="mock-basic")

    result = runner.invoke(args=["models", "probe", "mock-basic", "--json"])

    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert list(printed) == [*CAPABILITY_COLUMNS, "evidence"]
    assert {column: printed[column] for column in CAPABILITY_COLUMNS} == {
        "supports_streaming": True,
        "supports_tool_calling": False,
        "supports_response_format_json_object": False,
        "supports_response_format_json_schema": False,
        "supports_parallel_tool_calls": False,
    }
    assert list(printed["evidence"]) == list(CAPABILITY_COLUMNS)
    assert printed["evidence"]["supports_tool_calling"] == (
        "refused: the provider answered HTTP 400: tools are not supported by this model"
    )


def test_table_shows_stored_beside_observed_and_changes_nothing(
    app: Flask, db: Any, runner: FlaskCliRunner, mock_api: MockAPI
) -> None:
    model = mock_model(mock_provider(mock_api.url))

    result = runner.invoke(args=["models", "probe", "mock"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["CAPABILITY", "STORED", "OBSERVED", "EVIDENCE"]
    rows = {line.split()[0]: line.split()[1:3] for line in lines[1:]}
    assert rows["supports_streaming"] == ["yes", "yes"]
    assert rows["supports_tool_calling"] == ["no", "yes"]
    db.session.expire_all()
    assert db.session.get(LLMModel, model.id).supports_tool_calling is False


def test_apply_sets_observed_flags_and_leaves_unknown_ones(
    app: Flask, db: Any, runner: FlaskCliRunner
) -> None:
    # Streams properly, fails (500) on tools, ignores response_format.
    stub = StubUpstream({"stream": "stream", "tools": "500", "response_format": "text"})
    server = LiveServer(stub).start()
    try:
        provider = make_provider(name="Stub", base_url=server.url, api_prefix="/v1")
        model = make_model(
            provider,
            model="stub-1",
            key="stub",
            supports_tool_calling=True,
            supports_response_format_json_object=True,
            supports_response_format_json_schema=True,
        )
        result = runner.invoke(args=["models", "probe", "stub", "--json", "--apply"])
    finally:
        server.stop()

    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["supports_tool_calling"] is None
    assert printed["supports_parallel_tool_calls"] is None
    assert "applied  supports_streaming = yes" in result.stderr
    assert "3 flag(s) changed" in result.stderr
    db.session.expire_all()
    assert db.session.get(LLMModel, model.id).capabilities == {
        "supports_tool_calling": True,  # unknown: left as it was
        "supports_response_format_json_object": False,
        "supports_response_format_json_schema": False,
        "supports_streaming": True,
        "supports_parallel_tool_calls": False,
    }


def test_unknown_model_is_an_error(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["models", "probe", "nope"])
    assert result.exit_code != 0
    assert "no model matches 'nope'" in result.output
