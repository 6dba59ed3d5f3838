"""What leaves for a provider, and what comes back, over real loopback servers.

- An upstream that echoes the credentials it received inside a *successful* reply (split
  across chunks) never gets them to the reader: not in stream events, run_chat's result,
  the chat page's SSE frames, the transcript, nor the CLI.
- A provider that redirects is not followed: the reply is an error naming where it pointed,
  and the redirect's target never sees a request (chat, streaming, connection test, import).
- With MODELDESK_BLOCK_PRIVATE_URLS on, the address actually connected to is checked: a
  provider saved before the block, an IPv4-mapped IPv6 host, or a name that resolves inward
  after it was saved (DNS rebinding) gets no request.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from tests.support.app import LiveServer
from tests.support.chat_http import deltas_text, end_html, send, stream, wait_for_status
from tests.support.factories import make_model, make_provider
from webapp.extensions import db as _db
from webapp.models import ChatMessage, LLMModel, LLMProvider
from webapp.services import check_model_connection, run_chat, stream_chat
from webapp.services.llm_config import init_llm_settings
from webapp.services.model_import import fetch_import_listing

API_KEY = "sk-outbound-KEY-0123456789"
HEADER_VALUE = "hdr-outbound-VALUE-42"
SECRETS = ("KEY-0123456789", "VALUE-42")


class Upstream:
    """A WSGI stub on its own loopback server that counts the requests it got."""

    def __init__(self, respond: Callable[[dict[str, Any], Any], list[bytes]]) -> None:
        self._respond = respond
        self._lock = threading.Lock()
        self.paths: list[str] = []
        self.server = LiveServer(self._app)

    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with self._lock:
            self.paths.append(environ["PATH_INFO"])
        return self._respond(environ, start_response)

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[..., list[bytes]]], Upstream]]:
    started: list[Upstream] = []

    def start(respond: Callable[..., list[bytes]]) -> Upstream:
        upstream = Upstream(respond)
        upstream.server.start()
        started.append(upstream)
        return upstream

    yield start
    for upstream in started:
        upstream.server.stop()


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    body = {
        "id": "stub-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "stub",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    return f"data: {json.dumps(body)}\n\n".encode()


def echoing(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A provider that repeats the credentials it got inside a successful reply, cut into
    7-character pieces so every secret straddles two chunks."""
    size = int(environ.get("CONTENT_LENGTH") or 0)
    request = json.loads(environ["wsgi.input"].read(size) or "{}")
    text = (
        f"You sent {environ.get('HTTP_AUTHORIZATION', '')} "
        f"and X-Api-Key {environ.get('HTTP_X_API_KEY', '')}. Thanks!"
    )
    if not request.get("stream"):
        body = {
            "id": "stub-1",
            "object": "chat.completion",
            "created": 0,
            "model": "stub",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
        }
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]
    pieces = [chunk({"role": "assistant"})]
    pieces += [chunk({"content": text[i : i + 7]}) for i in range(0, len(text), 7)]
    pieces += [chunk({}, "stop"), b"data: [DONE]\n\n"]
    start_response("200 OK", [("Content-Type", "text/event-stream")])
    return pieces


def redirecting_to(target: str) -> Callable[..., list[bytes]]:
    def respond(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("307 Temporary Redirect", [("Location", target + environ["PATH_INFO"])])
        return [b""]

    return respond


def stub_model(base_url: str, **attributes: Any) -> LLMModel:
    provider = make_provider(
        name="Stub",
        base_url=base_url,
        api_prefix="/v1",
        api_key=API_KEY,
        headers={"X-Api-Key": HEADER_VALUE},
    )
    values = {"model": "stub", "name": "Stub", "key": "stub", "enabled": True}
    return make_model(provider, **{**values, **attributes})


def assert_clean(text: str) -> None:
    assert not any(secret in text for secret in SECRETS), text


# --- secrets echoed in a successful reply --------------------------------------------------


def test_a_streamed_reply_never_carries_the_providers_secrets(app: Flask, serve: Any) -> None:
    model = stub_model(serve(echoing).url, supports_streaming=True)

    events = list(stream_chat(model, user_text="hi"))

    text = "".join(event.content for event in events if event.type == "delta")
    assert_clean(text)
    assert text.startswith("You sent Bearer [redacted] and X-Api-Key [redacted]")
    done = events[-1].result
    assert done is not None and done.success
    assert done.value["assistant_message"]["content"] == text


def test_a_whole_reply_never_carries_the_providers_secrets(app: Flask, serve: Any) -> None:
    model = stub_model(serve(echoing).url)

    result = run_chat(model, user_text="hi")

    assert result.success, result.errors
    content = result.value["assistant_message"]["content"]
    assert_clean(content)
    assert "[redacted]" in content


def test_the_chat_page_never_streams_or_stores_the_providers_secrets(
    serve: Any, member_http: httpx2.Client
) -> None:
    model = stub_model(serve(echoing).url, supports_streaming=True)
    message_id = send(member_http, model, "Who am I?")

    _, frames = stream(member_http, message_id)

    assert_clean("".join(frame.data for frame in frames))
    assert "[redacted]" in deltas_text(frames) and "[redacted]" in end_html(frames)
    saved = wait_for_status(message_id, {"complete"})
    assert_clean(saved.content)
    page = member_http.get(f"/c/{saved.conversation_id}").text
    assert_clean(page)


def test_the_cli_never_prints_the_providers_secrets(
    app: Flask, runner: FlaskCliRunner, serve: Any
) -> None:
    stub_model(serve(echoing).url, supports_streaming=True)

    result = runner.invoke(args=["chat", "--model", "stub", "hi"])

    assert result.exit_code == 0, result.output
    assert_clean(result.output)
    assert "[redacted]" in result.output


# --- redirects -----------------------------------------------------------------------------


def chat_error(model: LLMModel) -> str:
    result = run_chat(model, user_text="hi")
    assert not result.success
    return result.errors[0]


def stream_error(model: LLMModel) -> str:
    events = list(stream_chat(model, user_text="hi"))
    result = events[-1].result
    assert events[-1].type == "error" and result is not None
    return result.errors[0]


def connection_error(model: LLMModel) -> str:
    result = check_model_connection(model)
    assert not result.success and model.connection_tested_at is None
    return result.errors[0]


def import_error(model: LLMModel) -> str:
    listing = fetch_import_listing(model.llm_provider)
    assert listing.error
    return listing.error


CALLS = {
    "chat": chat_error,
    "stream": stream_error,
    "connection test": connection_error,
    "import": import_error,
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_a_redirect_is_not_followed_and_says_where_it_pointed(
    app: Flask, serve: Any, call: Callable[[LLMModel], str]
) -> None:
    elsewhere = serve(echoing)
    redirector = serve(redirecting_to(elsewhere.url))
    model = stub_model(redirector.url, supports_streaming=True)

    message = call(model)

    assert f"redirected (HTTP 307) to {elsewhere.url}/v1/" in message, message
    assert "set the provider's base URL" in message
    assert redirector.paths and elsewhere.paths == []


# --- the private-address block, at connect time -----------------------------------------------


def block_private_addresses(app: Flask) -> None:
    app.config["BLOCK_PRIVATE_URLS"] = True
    init_llm_settings(app)


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_a_provider_saved_before_the_block_gets_no_request(
    app: Flask, serve: Any, call: Callable[[LLMModel], str]
) -> None:
    upstream = serve(echoing)
    model = stub_model(upstream.url, supports_streaming=True)
    block_private_addresses(app)

    message = call(model)

    assert "127.0.0.1, a private or loopback address" in message, message
    assert upstream.paths == []


def test_an_ipv4_mapped_ipv6_host_is_judged_by_its_ipv4_address(app: Flask, serve: Any) -> None:
    upstream = serve(echoing)
    model = stub_model(upstream.url.replace("127.0.0.1", "[::ffff:127.0.0.1]"))
    assert run_chat(model, user_text="hi").success  # reachable while nothing is blocked
    seen = len(upstream.paths)
    block_private_addresses(app)

    message = chat_error(model)

    assert "::ffff:127.0.0.1, a private or loopback address" in message, message
    assert len(upstream.paths) == seen


def test_a_name_that_resolves_inward_after_it_was_saved_gets_no_request(
    app: Flask, serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: public when the URL is checked at save time, loopback when used."""
    upstream = serve(echoing)
    port = upstream.server.port
    real_getaddrinfo = socket.getaddrinfo
    dns = {"rebind.example": "93.184.216.34"}

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in dns:
            return real_getaddrinfo(host, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (dns[host], port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    block_private_addresses(app)
    provider = LLMProvider(name="Rebind", base_url=f"http://rebind.example:{port}", api_prefix="")
    assert provider.validation_errors() == {}  # public at save time
    _db.session.add(provider)
    _db.session.commit()
    model = make_model(provider, model="stub", name="Stub", enabled=True)
    dns["rebind.example"] = "127.0.0.1"  # the name now points inward

    message = chat_error(model)

    assert "rebind.example resolves to 127.0.0.1" in message, message
    assert upstream.paths == []


@pytest.mark.parametrize(
    "host",
    [
        "[::ffff:127.0.0.1]",
        "[::127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "[64:ff9b::a00:1]",
        "[2002:7f00:1::1]",
        "[2002:c0a8:101::1]",
        "[::1]",
        "[fd00::1]",
    ],
)
def test_private_addresses_in_ipv6_clothing_are_refused_at_save(app: Flask, host: str) -> None:
    block_private_addresses(app)
    provider = LLMProvider(name="Inward", base_url=f"http://{host}:8000", api_prefix="/v1")

    assert "base_url" in provider.validation_errors()


def test_the_page_of_a_blocked_reply_says_why(
    app: Flask, live_server: LiveServer, serve: Any, member_http: httpx2.Client
) -> None:
    upstream = serve(echoing)
    model = stub_model(upstream.url, supports_streaming=True)
    block_private_addresses(live_server.app)
    message_id = send(member_http, model, "Anyone?")

    _, frames = stream(member_http, message_id)

    assert "a private or loopback address" in end_html(frames)
    assert wait_for_status(message_id, {"error"}).error_code == "LLM_REQUEST_FAILED"
    assert upstream.paths == []
    assert _db.session.get(ChatMessage, message_id) is not None
