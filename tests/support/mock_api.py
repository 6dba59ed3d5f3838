"""The mock OpenAI API on its own loopback server, as the service-level tests use it.

`MockAPI` wraps the server's WSGI app and records every request as it arrived
(`WireRecorder`), so "nothing was sent" and "top_k reached the body" are observed, not
inferred. The `mock_server` / `mock_api` fixtures are in `tests.support.mock_fixtures`.
"""

from __future__ import annotations

import io
import json
import math
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.support.app import LiveServer, make_config
from tests.support.factories import make_model, make_provider
from tests.support.waiting import wait_for
from webapp import create_app
from webapp.mock_llm import MockLLMRecord
from webapp.models import LLMModel, LLMProvider
from webapp.services import Result, StreamEvent, stream_chat

MOCK_PREFIX = "/mock_llm/v1"
FAULT = "X-Mock-Fault"
TAG = r" \[#[0-9a-f]{8}\]"
PIECE = 18  # the mock's largest streamed content delta, in characters
LONG_PROMPT = "The quick brown fox jumps over the lazy dog. " * 5
API_KEY_SECRET = "sk-test-SECRET-123456"
HEADER_SECRET = "hdr-secret-987654"


def mock_provider(server_url: str, **attributes: Any) -> LLMProvider:
    """A provider pointing at the mock API of the server at `server_url`."""
    values = {
        "name": "Mock (Local)",
        "base_url": server_url,
        "api_prefix": MOCK_PREFIX,
    }
    return make_provider(**{**values, **attributes})


def mock_model(provider: LLMProvider, **attributes: Any) -> LLMModel:
    """The mock's model, enabled and streaming, as the seeds create it."""
    values: dict[str, Any] = {
        "model": "mock",
        "name": "Mock",
        "key": "mock",
        "enabled": True,
        "supports_streaming": True,
    }
    return make_model(provider, **{**values, **attributes})


def faulty_model(server_url: str, fault: str) -> LLMModel:
    """The mock model on a provider whose every request asks the mock for `fault`."""
    return mock_model(mock_provider(server_url, headers={FAULT: fault}))


def user(content: Any) -> dict[str, Any]:
    """A user message as the chat completions API takes it."""
    return {"role": "user", "content": content}


def mock_reply_body(prompt: str, model: str = "mock") -> str:
    """The mock's default reply to `prompt`, before its random tag."""
    return f"Mock response (model={model}): {' '.join(prompt.split())[:240]}"


def mock_reply_pattern(prompt: str, model: str = "mock") -> str:
    """The mock's default reply to `prompt`, as a full-match regex."""
    return re.escape(mock_reply_body(prompt, model)) + TAG


def mock_usage(messages: Iterable[dict[str, Any]], reply: str) -> dict[str, int]:
    """The mock's usage arithmetic: four characters a token, rounded up."""
    prompt_tokens = math.ceil(sum(len(m["content"]) for m in messages) / 4)
    completion_tokens = math.ceil(len(reply) / 4)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def stream_outcomes(record: MockLLMRecord, count: int = 1, within: float = 10.0) -> list[str]:
    """The mock's recorded stream outcomes, once `count` are there (a disconnect shows late)."""
    wait_for(lambda: len(record.outcomes()) >= count, timeout=within)
    return [outcome.outcome for outcome in record.outcomes()]


@dataclass(frozen=True)
class WireRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class WireRecorder:
    """WSGI middleware: records each request (headers, decoded JSON body), then passes it on."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self._requests: list[WireRequest] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(raw)
        headers = {
            name[5:].replace("_", "-").lower(): value
            for name, value in environ.items()
            if name.startswith("HTTP_")
        }
        request = WireRequest(
            environ["REQUEST_METHOD"], environ["PATH_INFO"], headers, json.loads(raw or "null")
        )
        with self._lock:
            self._requests.append(request)
        return self.app(environ, start_response)

    @property
    def requests(self) -> list[WireRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def bodies(self) -> list[Any]:
        return [request.body for request in self.requests]


@contextmanager
def serving_mock(database_url: str, instance_path: Path) -> Iterator[LiveServer]:
    """The app (for its mock API) on a real threaded loopback server."""
    server = LiveServer(create_app(make_config(database_url, str(instance_path)))).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class MockAPI:
    """One test's view of the shared mock server: its URL, a fresh record, a wire recorder."""

    url: str
    app: Flask
    wire: WireRecorder
    record: MockLLMRecord

    @classmethod
    def install(cls, server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> MockAPI:
        wire = WireRecorder(server.app.wsgi_app)
        record = MockLLMRecord()
        monkeypatch.setattr(server.app, "wsgi_app", wire)
        monkeypatch.setitem(server.app.extensions, "mock_llm", record)
        return cls(url=server.url, app=server.app, wire=wire, record=record)


def events_of(model: LLMModel, **arguments: Any) -> list[StreamEvent]:
    return list(stream_chat(model, **arguments))


def only_error(events: list[StreamEvent]) -> Result:
    """The result of the single `error` event, which must be the last event."""
    assert [e.type for e in events].count("error") == 1
    assert "done" not in [e.type for e in events]
    assert events[-1].type == "error"
    result = events[-1].result
    assert result is not None
    assert not result.success
    return result


def done_result(events: list[StreamEvent]) -> Result:
    """The result of the single `done` event, which must be the last event."""
    assert [e.type for e in events[:-1]] == ["delta"] * (len(events) - 1)
    assert events[-1].type == "done"
    result = events[-1].result
    assert result is not None
    assert result.success, result.errors
    return result


# --- presets ------------------------------------------------------------------------------


def echo_credentials(received: list[dict[str, str]]) -> Callable[..., Any]:
    """A provider that answers 401 and, like some proxies, repeats the credentials it got."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        credentials = {
            "authorization": environ.get("HTTP_AUTHORIZATION", ""),
            "x-api-key": environ.get("HTTP_X_API_KEY", ""),
        }
        received.append(credentials)
        authorization, api_key = credentials["authorization"], credentials["x-api-key"]
        message = f"rejected {authorization} with X-Api-Key {api_key}"
        body = json.dumps({"error": {"message": message, "type": "authentication_error"}})
        start_response("401 Unauthorized", [("Content-Type", "application/json")])
        return [body.encode()]

    return app
