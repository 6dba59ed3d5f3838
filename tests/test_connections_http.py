"""Connections to a provider are reused: a reply read to its end gives its connection back to
the pool, for streamed replies, replies sent at once, connection tests, model lists and
probes — counted at a real keep-alive server. A reply that is stopped still closes its
connection at once, and a provider that never ends its body does not hold a reply up."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest

from tests.support.app import LiveServer
from tests.support.chat_http import deltas_text, read_frames, send, stream, wait_for_status
from tests.support.factories import make_model, make_provider
from tests.support.keepalive import MODEL, REPLY, USAGE, KeepAliveProvider
from tests.support.users import csrf_token
from tests.support.waiting import wait_for
from webapp.llm.clients import ClientSettings, client_for
from webapp.llm.probe import probe_capabilities
from webapp.llm.run import StreamEvent, ping, run_chat, stream_chat
from webapp.llm.specs import ModelSpec, ProviderSpec
from webapp.models import CAPABILITY_COLUMNS, LLMModel
from webapp.services import reply_limits

REPLIES = 20
# Stopping a reply must close the provider's connection this soon.
STOP_SECONDS = 2.0


@pytest.fixture
def provider() -> Iterator[KeepAliveProvider]:
    upstream = KeepAliveProvider().start()
    yield upstream
    upstream.stop()


@pytest.fixture
def spec(provider: KeepAliveProvider) -> ModelSpec:
    endpoint = ProviderSpec(name="Keep-alive", endpoint=provider.url)
    return ModelSpec(
        id=1, model=MODEL, name="Keep-alive", provider=endpoint, supports_streaming=True
    )


def client(spec: ModelSpec) -> Any:
    return client_for(spec.provider, ClientSettings())


def streamed_reply(spec: ModelSpec) -> list[StreamEvent]:
    return list(stream_chat(spec, user_text="Hello", client=client(spec)))


# --- the engine ------------------------------------------------------------------------------


def test_twenty_streamed_replies_use_one_connection(
    provider: KeepAliveProvider, spec: ModelSpec
) -> None:
    for _ in range(REPLIES):
        events = streamed_reply(spec)
        assert events[-1].type == "done"
        result = events[-1].result
        assert result is not None
        assert result.value["assistant_message"]["content"] == REPLY
        assert result.value["usage"] == USAGE

    assert provider.accepted == 1


def test_a_provider_ending_its_lines_with_crlf_streams_the_same_reply(
    provider: KeepAliveProvider, spec: ModelSpec
) -> None:
    provider.line_end = "\r\n"
    for _ in range(2):
        events = streamed_reply(spec)
        assert "".join(e.content for e in events) == REPLY
        assert events[-1].type == "done"

    assert provider.accepted == 1


def test_a_reused_connection_the_provider_hung_up_on_is_retried_on_a_new_one(
    provider: KeepAliveProvider, spec: ModelSpec
) -> None:
    """The provider closes the pooled connection just as the next reply reuses it (both
    keep-alive timers ran out together): the reply is sent once more, on a new connection,
    and arrives whole — the reader never sees the race."""
    assert streamed_reply(spec)[-1].type == "done"
    provider.hang_up_on_reused = 1

    events = streamed_reply(spec)

    assert events[-1].type == "done", events[-1]
    assert "".join(e.content for e in events if e.type == "delta") == REPLY
    assert provider.accepted == 2 and provider.hang_up_on_reused == 0


def test_a_request_the_provider_read_before_hanging_up_is_not_sent_again(
    provider: KeepAliveProvider, spec: ModelSpec
) -> None:
    """On a new connection the provider got the whole request and may have worked on it (and
    billed it): the hang-up is the reply's error, never a second request."""
    provider.hang_up_on_new = 1

    events = streamed_reply(spec)

    assert events[-1].type == "error"
    assert "disconnected" in events[-1].result.errors[0]
    assert provider.requests == 1 and provider.accepted == 1


def test_twenty_replies_sent_at_once_use_one_connection(
    provider: KeepAliveProvider, spec: ModelSpec
) -> None:
    for _ in range(REPLIES):
        result = run_chat(spec, user_text="Hello", client=client(spec))
        assert result.success, result.errors

    assert provider.accepted == 1


def test_twenty_connection_tests_use_one_connection(
    provider: KeepAliveProvider, spec: ModelSpec
) -> None:
    for _ in range(REPLIES):
        result = ping(spec, client(spec))
        assert result.success, result.errors

    assert provider.accepted == 1


def test_listing_models_reuses_the_connection(provider: KeepAliveProvider, spec: ModelSpec) -> None:
    for _ in range(REPLIES):
        assert [model.id for model in client(spec).models.list()] == [MODEL]

    assert provider.accepted == 1


def test_two_rounds_of_probes_open_no_more_connections_than_run_at_once(
    provider: KeepAliveProvider, spec: ModelSpec
) -> None:
    first = probe_capabilities(spec, client(spec), time_limit=10)
    second = probe_capabilities(spec, client(spec), time_limit=10)

    streaming = [o for o in second.observations if o.column == "supports_streaming"]
    assert [o.observed for o in streaming] == [True]
    assert first.observations == second.observations
    # The five probes of a round run at once, so a round may need up to five connections
    # (how many depends on timing); ten requests on ten connections would mean none reused.
    assert provider.accepted <= len(CAPABILITY_COLUMNS)


def test_a_provider_that_never_ends_its_body_does_not_hold_the_reply_up(
    provider: KeepAliveProvider, spec: ModelSpec
) -> None:
    provider.hold_after_done = True
    started = time.monotonic()
    events = streamed_reply(spec)
    elapsed = time.monotonic() - started

    assert events[-1].type == "done"
    # The rest of the body is waited for half a second; the generous bound is for CI.
    assert elapsed < 5.0
    # Its connection could not be reused: the next reply opens another.
    provider.hold_after_done = False
    assert streamed_reply(spec)[-1].type == "done"
    assert provider.accepted == 2


def stop_a_reply_on_a_reused_connection(
    provider: KeepAliveProvider,
    spec: ModelSpec,
    slow_down: Callable[[], None],
    when: Callable[[list[StreamEvent]], bool],
) -> list[StreamEvent]:
    """A reply first, so the next one runs on a pooled connection (whose socket never passes
    the connect); then the provider is slowed down (`slow_down`), and the next reply is
    cancelled once `when(its events so far)`: it must close its connection within
    STOP_SECONDS. Returns its events."""
    assert streamed_reply(spec)[-1].type == "done"
    slow_down()
    events = stream_chat(spec, user_text="Hello", client=client(spec))
    seen: list[StreamEvent] = []
    reader = threading.Thread(target=lambda: seen.extend(events), daemon=True)
    reader.start()
    assert wait_for(lambda: when(seen))

    cancelled = time.monotonic()
    events.cancel()

    assert wait_for(lambda: provider.left_at, timeout=10)
    assert provider.left_at[0] - cancelled < STOP_SECONDS
    reader.join(timeout=10)
    assert not reader.is_alive()
    return seen


def test_a_cancelled_stream_on_a_reused_connection_closes_it_at_once(
    provider: KeepAliveProvider, spec: ModelSpec
) -> None:
    def hold_before_done() -> None:
        provider.hold_before_done = True

    seen = stop_a_reply_on_a_reused_connection(
        provider, spec, hold_before_done, lambda seen: "".join(e.content for e in seen) == REPLY
    )

    assert seen[-1].type == "error"
    assert provider.accepted == 1


def test_stop_before_the_provider_answers_on_a_reused_connection_closes_it_at_once(
    provider: KeepAliveProvider, spec: ModelSpec
) -> None:
    """The request's socket joins the cancellation as the request is written: Stop cuts a
    pooled connection even while the provider has not answered at all."""

    def say_nothing() -> None:
        provider.silent_on_reused = True

    seen = stop_a_reply_on_a_reused_connection(
        provider, spec, say_nothing, lambda _: provider.requests == 2
    )

    assert seen[-1].type == "error"
    assert provider.requests == 2  # not sent again after Stop


# --- the chat page ---------------------------------------------------------------------------


def keepalive_model(provider: KeepAliveProvider) -> LLMModel:
    row = make_provider(name="Keep-alive", base_url=provider.url.removesuffix("/v1"))
    return make_model(row, model=MODEL, name="Keep-alive", enabled=True, supports_streaming=True)


def test_twenty_chat_page_replies_use_one_upstream_connection(
    live_server: LiveServer, member_http: httpx2.Client, provider: KeepAliveProvider
) -> None:
    model = keepalive_model(provider)
    for _ in range(REPLIES):
        message_id = send(member_http, model, "Hello")
        _, frames = stream(member_http, message_id)
        assert deltas_text(frames) == REPLY
        assert wait_for_status(message_id, {"complete"}).status == "complete"

    assert provider.accepted == 1


def test_stop_after_the_reader_left_closes_the_upstream_connection_within_2_s(
    live_server: LiveServer, member_http: httpx2.Client, provider: KeepAliveProvider
) -> None:
    """The reader going away leaves the reply (and its provider connection) running; Stop,
    pressed from any page, closes the connection at once."""
    live_server.app.extensions["reply_limits"] = reply_limits.ReplyLimits(heartbeat_seconds=0.1)
    model = keepalive_model(provider)
    provider.hold_before_done = True
    message_id = send(member_http, model, "Hello")

    with member_http.stream("GET", f"/messages/{message_id}/stream") as response:
        text = ""
        for frame in read_frames(response.iter_lines()):
            text += frame.data if frame.event == "delta" else ""
            if text == REPLY:
                break
    assert wait_for(lambda: not live_server.active_requests)  # the server saw it leave
    assert provider.left_at == []
    headers = {"HX-Request": "true", "X-CSRFToken": csrf_token(member_http)}
    pressed = time.monotonic()

    member_http.post(f"/messages/{message_id}/stop", headers=headers)

    assert wait_for(lambda: provider.left_at, timeout=10)
    assert provider.left_at[0] - pressed < STOP_SECONDS
    assert wait_for_status(message_id, {"stopped"}).status == "stopped"
