"""`flask chat` and `flask models test` against the real mock API."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from tests.support.factories import make_preset
from tests.support.mock_api import (
    FAULT,
    LONG_PROMPT,
    MockAPI,
    mock_model,
    mock_provider,
    mock_reply_pattern,
)
from tests.support.net import closed_port_url
from webapp.models import LLMModel


@pytest.fixture
def model(app: Flask, mock_api: MockAPI) -> LLMModel:
    model = mock_model(mock_provider(mock_api.url))
    make_preset(model, llm_options_overrides={"temperature": 0.0})
    make_preset(model, key="short", name="Short", llm_options_overrides={"max_tokens": 3})
    return model


class TestChatCommand:
    def test_prints_the_streamed_reply_then_the_stats(
        self, runner: FlaskCliRunner, mock_api: MockAPI, model: LLMModel
    ) -> None:
        result = runner.invoke(args=["chat", "--model", "MOCK", LONG_PROMPT])

        assert result.exit_code == 0, result.output
        assert re.fullmatch(mock_reply_pattern(LONG_PROMPT) + "\n", result.stdout)
        # Statistics in words: no Python dict or None reaches the terminal.
        assert re.fullmatch(
            r"\[preset Default · \d+ prompt \+ \d+ completion tokens · finish stop · "
            r"first token \d+ ms · total \d+ ms\]\n",
            result.stderr,
        ), result.stderr
        [body] = mock_api.wire.bodies
        assert body["stream"] is True
        assert body["messages"] == [{"role": "user", "content": LONG_PROMPT}]

    def test_preset_and_system_options(
        self, runner: FlaskCliRunner, mock_api: MockAPI, model: LLMModel
    ) -> None:
        result = runner.invoke(
            args=["chat", "--model", "mock", "--preset", "short", "--system", "Be terse.", "hi"]
        )

        assert result.exit_code == 0, result.output
        # max_tokens 3: the mock cuts its reply to 12 characters.
        assert result.stdout == "Mock respons\n"
        assert result.stderr.startswith("[preset Short · ")
        [body] = mock_api.wire.bodies
        assert body["max_tokens"] == 3
        assert body["messages"][0] == {"role": "system", "content": "Be terse."}

    def test_a_model_that_does_not_stream_gets_one_reply(
        self, runner: FlaskCliRunner, mock_api: MockAPI, model: LLMModel, db: Any
    ) -> None:
        model.supports_streaming = False
        db.session.commit()

        result = runner.invoke(args=["chat", "--model", "mock", "hello there"])

        assert result.exit_code == 0, result.output
        assert re.fullmatch(mock_reply_pattern("hello there") + "\n", result.stdout)
        assert "finish stop" in result.stderr
        assert "stream" not in mock_api.wire.bodies[0]

    def test_unknown_model_key_fails(self, runner: FlaskCliRunner, mock_api: MockAPI) -> None:
        result = runner.invoke(args=["chat", "--model", "nope", "hi"])

        assert result.exit_code != 0
        assert "no model matches 'nope'" in result.stderr
        assert mock_api.wire.requests == []

    @pytest.mark.parametrize("streaming", [True, False])
    def test_disabled_model_fails_with_its_code(
        self,
        runner: FlaskCliRunner,
        mock_api: MockAPI,
        model: LLMModel,
        db: Any,
        streaming: bool,
    ) -> None:
        model.enabled = False
        model.supports_streaming = streaming
        db.session.commit()

        result = runner.invoke(args=["chat", "--model", "mock", "hi"])

        assert result.exit_code != 0
        assert "Error: MODEL_DISABLED: Mock is disabled" in result.stderr
        assert mock_api.wire.requests == []

    def test_unknown_preset_fails_with_its_code(
        self, runner: FlaskCliRunner, mock_api: MockAPI, model: LLMModel
    ) -> None:
        result = runner.invoke(args=["chat", "--model", "mock", "--preset", "nope", "hi"])

        assert result.exit_code != 0
        assert "PRESET_NOT_FOUND" in result.stderr

    def test_upstream_failure_fails_with_its_code(self, runner: FlaskCliRunner, app: Flask) -> None:
        mock_model(mock_provider(closed_port_url()))

        result = runner.invoke(args=["chat", "--model", "mock", "hi"])

        assert result.exit_code != 0
        assert "Error: LLM_REQUEST_FAILED: the connection to the provider failed" in result.stderr


class TestModelsTestCommand:
    def test_success_reports_the_latency(
        self, runner: FlaskCliRunner, mock_api: MockAPI, model: LLMModel, db: Any
    ) -> None:
        result = runner.invoke(args=["models", "test", "mock"])

        assert result.exit_code == 0, result.output
        assert re.fullmatch(r"ok: Mock \(Local\)/mock answered in \d+(\.\d+)? ms\n", result.stdout)
        db.session.refresh(model)
        assert model.connection_tested_at is not None
        assert len(mock_api.wire.requests) == 1

    def test_failure_prints_the_code_and_the_reason(
        self, runner: FlaskCliRunner, app: Flask, mock_api: MockAPI
    ) -> None:
        mock_model(mock_provider(mock_api.url, headers={FAULT: "status=503"}))

        result = runner.invoke(args=["models", "test", "mock"])

        assert result.exit_code != 0
        assert (
            "Error: LLM_REQUEST_FAILED: the provider answered HTTP 503: mock fault: HTTP 503"
            in result.stderr
        )

    def test_unknown_key_fails(self, runner: FlaskCliRunner, app: Flask) -> None:
        result = runner.invoke(args=["models", "test", "nope"])

        assert result.exit_code != 0
        assert "no model matches 'nope'" in result.stderr


class TestDryRun:
    def test_prints_the_exact_request_and_sends_nothing(
        self, runner: FlaskCliRunner, mock_api: MockAPI, model: LLMModel, db: Any
    ) -> None:
        provider = model.llm_provider
        provider.api_key = "sk-dry-run-SECRET-1"
        provider.headers = {"X-Title": "hdr-dry-run-SECRET-2"}
        provider.llm_options_defaults = {"top_k": 20, "temperature": 0.5}
        model.context_window_tokens = 1000
        db.session.commit()

        result = runner.invoke(
            args=[
                "chat",
                "--model",
                "mock",
                "--preset",
                "short",
                "--system",
                "Be terse.",
                "--dry-run",
                "hi",
            ]
        )

        assert result.exit_code == 0, result.output
        assert mock_api.wire.requests == []
        assert "SECRET" not in result.output
        printed = json.loads(result.stdout)
        assert printed["url"] == f"{mock_api.url}/mock_llm/v1/chat/completions"
        assert printed["headers"] == {
            "Authorization": "[redacted]",
            "Content-Type": "application/json",
            "X-Title": "[redacted]",
        }
        assert printed["body"] == {
            "model": "mock",
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "hi"},
            ],
            "top_k": 20,
            "temperature": 0.5,
            "max_tokens": 3,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        budget = printed["budget"]
        assert (budget["max_tokens"], budget["reserve_tokens"], budget["limit_tokens"]) == (
            1000,
            3,
            997,
        )
        assert 0 < budget["estimated_tokens"] < 20
        assert printed["preset"] == "short"

    def test_the_body_is_what_a_real_call_sends(
        self, runner: FlaskCliRunner, mock_api: MockAPI, model: LLMModel
    ) -> None:
        dry = json.loads(runner.invoke(args=["chat", "--model", "mock", "--dry-run", "hi"]).stdout)
        assert mock_api.wire.requests == []

        sent = runner.invoke(args=["chat", "--model", "mock", "hi"])

        assert sent.exit_code == 0, sent.output
        assert mock_api.wire.bodies == [dry["body"]]
