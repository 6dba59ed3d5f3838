"""`flask models list`, `flask providers list` and the ways a command can name a model."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from tests.support.factories import make_model, make_provider
from tests.support.mock_api import MockAPI, mock_model, mock_provider
from webapp.extensions import db


@pytest.fixture
def catalog(app: Flask, mock_api: MockAPI) -> dict[str, Any]:
    mock = mock_model(mock_provider(mock_api.url))
    router = make_provider(
        name="OpenRouter", base_url="https://openrouter.ai/api", api_prefix="/v1"
    )
    volc = make_provider(
        name="Volcengine (火山引擎)", base_url="https://ark.example", api_prefix="/v3", api_key="k"
    )
    grok = make_model(router, model="x-ai/grok-4.1-fast", name="Grok", enabled=True)
    twin_a = make_model(router, model="shared-id", name="Shared A")
    twin_b = make_model(volc, model="shared-id", name="Shared B", context_window_tokens=32000)
    return {"mock": mock, "grok": grok, "twin_a": twin_a, "twin_b": twin_b}


def test_models_list_is_an_aligned_table_with_no_python_values(
    runner: FlaskCliRunner, catalog: dict[str, Any]
) -> None:
    result = runner.invoke(args=["models", "list"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == [
        "KEY",
        "PROVIDER",
        "MODEL",
        "ENABLED",
        "STREAMING",
        "CONTEXT",
        "LAST",
        "TESTED",
    ]
    assert len(lines) == 5
    for forbidden in ("None", "True", "False", "{", "datetime"):
        assert forbidden not in result.output
    # Columns line up: every (ASCII) row's MODEL cell starts where the header's does.
    start = lines[0].index("MODEL")
    rows = [line for line in lines[1:] if line.isascii()]
    assert len(rows) == 3
    assert all(line[start - 2 : start] == "  " and line[start] != " " for line in rows)
    assert "32,000" in result.output and "unlimited" in result.output


def test_models_list_filters_and_prints_json(
    runner: FlaskCliRunner, catalog: dict[str, Any]
) -> None:
    enabled = runner.invoke(args=["models", "list", "--enabled", "--json"])
    openrouter = runner.invoke(args=["models", "list", "--provider", "openrouter"])
    unknown = runner.invoke(args=["models", "list", "--provider", "Nowhere"])

    rows = json.loads(enabled.output)
    assert sorted(row["model"] for row in rows) == ["mock", "x-ai/grok-4.1-fast"]
    assert {row["provider"] for row in rows} == {"Mock (Local)", "OpenRouter"}
    assert "Mock (Local)" not in openrouter.output and "x-ai/grok-4.1-fast" in openrouter.output
    assert unknown.exit_code != 0 and "no provider named 'Nowhere'" in unknown.output


def test_providers_list_says_not_set_instead_of_none(
    runner: FlaskCliRunner, catalog: dict[str, Any]
) -> None:
    table = runner.invoke(args=["providers", "list"])
    as_json = json.loads(runner.invoke(args=["providers", "list", "--json"]).output)

    assert table.exit_code == 0, table.output
    assert "None" not in table.output and "not set" in table.output
    lines = table.output.splitlines()
    # A wide (CJK) name still lines the next column up, counting two columns per character.
    endpoint_column = next(line for line in lines if line.startswith("Volcengine"))
    assert endpoint_column.index("https") == lines[0].index("ENDPOINT") - 4
    by_name = {row["name"]: row for row in as_json}
    assert by_name["Volcengine (火山引擎)"]["api_key"] == "set"
    assert by_name["OpenRouter"] | {"endpoint": None} == {
        "name": "OpenRouter",
        "endpoint": None,
        "api_key": "none",
        "models": 2,
        "enabled_models": 1,
    }


@pytest.mark.parametrize("reference", ["mock", "MOCK", "Mock (Local)/mock", "mock (local)/mock"])
def test_chat_finds_a_model_by_key_or_provider_and_id(
    runner: FlaskCliRunner, catalog: dict[str, Any], reference: str
) -> None:
    result = runner.invoke(args=["chat", "--model", reference, "hi"])

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Mock response (model=mock): hi")


def test_a_model_id_only_one_provider_has_is_enough(
    runner: FlaskCliRunner, catalog: dict[str, Any], mock_api: MockAPI
) -> None:
    grok = catalog["grok"]
    grok.llm_provider.base_url = mock_api.url
    grok.llm_provider.api_prefix = "/mock_llm/v1"
    grok.supports_streaming = True
    db.session.commit()

    result = runner.invoke(args=["chat", "--model", "x-ai/grok-4.1-fast", "hi"])

    assert result.exit_code == 0, result.output
    assert "Mock response (model=x-ai/grok-4.1-fast)" in result.stdout


def test_an_ambiguous_or_mistyped_reference_lists_what_it_could_mean(
    runner: FlaskCliRunner, catalog: dict[str, Any]
) -> None:
    ambiguous = runner.invoke(args=["chat", "--model", "shared-id", "hi"])
    typo = runner.invoke(args=["models", "test", "grok-4.1"])
    nothing = runner.invoke(args=["chat", "--model", "zzzz-unknown", "hi"])

    assert ambiguous.exit_code != 0
    assert "OpenRouter/shared-id" in ambiguous.stderr
    assert "Volcengine (火山引擎)/shared-id" in ambiguous.stderr
    assert typo.exit_code != 0 and "OpenRouter/x-ai/grok-4.1-fast" in typo.stderr
    assert nothing.exit_code != 0 and "see `flask models list`" in nothing.stderr


def test_models_test_prints_json_for_scripts(
    runner: FlaskCliRunner, catalog: dict[str, Any]
) -> None:
    result = runner.invoke(args=["models", "test", "mock", "--json"])

    assert result.exit_code == 0, result.output
    outcome = json.loads(result.output)
    assert (outcome["model"], outcome["ok"], outcome["error"]) == ("Mock (Local)/mock", True, None)
    assert outcome["latency_ms"] >= 0


@pytest.mark.parametrize(
    "command",
    [
        ["chat"],
        ["models", "list"],
        ["models", "test"],
        ["models", "probe"],
        ["providers", "list"],
        ["seed"],
        ["up"],
        ["keys", "rotate"],
        ["users", "create"],
        ["users", "list"],
        ["apikeys", "create"],
        ["apikeys", "list"],
        ["apikeys", "revoke"],
        ["config", "export"],
        ["config", "import"],
        ["config", "history"],
    ],
)
def test_every_command_has_help_with_an_example(runner: FlaskCliRunner, command: list[str]) -> None:
    result = runner.invoke(args=[*command, "--help"])

    assert result.exit_code == 0 and "Example:" in result.output
