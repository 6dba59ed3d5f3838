"""The gateway under /v1, over a real HTTP server, with the official `openai` SDK as client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest

from tests.support.app import LiveServer
from tests.support.factories import make_preset
from tests.support.gateway import (
    ScriptedUpstream,
    app_key,
    sdk,
    stalled_stream,
    user_says,
)
from tests.support.mock_api import FAULT, mock_model, mock_provider
from tests.support.net import SilentUpstream, TcpProxy
from tests.support.waiting import wait_for
from webapp.extensions import db
from webapp.models import LLMModel
from webapp.services import usage
from webapp.services.app_keys import find_key, revoke_key
from webapp.services.gateway_catalog import CHECK_INTERVAL_SECONDS

PROVIDER_KEY = "sk-provider-SECRET-0123456789"


@pytest.fixture
def mock(live_server: LiveServer) -> LLMModel:
    """The mock model behind key "mock", with a default preset and a "hot" one."""
    model = mock_model(mock_provider(live_server.url))
    make_preset(model, key="default", name="Default", llm_options_overrides={"temperature": 0.1})
    make_preset(model, key="hot", name="Hot", llm_options_overrides={"temperature": 1.5})
    return model


@pytest.fixture
def scripted() -> Iterator[tuple[ScriptedUpstream, LiveServer]]:
    upstream = ScriptedUpstream(["Hel", "lo"], usage={"prompt_tokens": 7, "completion_tokens": 2})
    server = LiveServer(upstream).start()
    yield upstream, server
    server.stop()


def stub_model(server: LiveServer, **attributes: Any) -> LLMModel:
    provider = mock_provider(
        server.url, name="Stub", api_prefix="/v1", api_key=attributes.pop("api_key", None)
    )
    values = {"model": "stub-model", "name": "Stub", "key": "stub", **attributes}
    return mock_model(provider, **values)


def streamed_text(stream: Any) -> str:
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def error_of(response: httpx2.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body["error"]) == {"message", "type", "code", "param"}
    return body["error"]


# --- models -------------------------------------------------------------------------------


def test_models_lists_keyed_enabled_models_and_their_keyed_presets(
    live_server: LiveServer, mock: LLMModel
) -> None:
    provider = mock.llm_provider
    mock_model(provider, model="mock-2", name="Off", key="off", enabled=False)
    mock_model(provider, model="mock-3", name="No key", key=None)
    listed = sdk(live_server, app_key()).models.list()

    assert sorted(m.id for m in listed) == ["mock", "mock@default", "mock@hot"]
    assert {m.owned_by for m in listed} == {provider.name}


def test_a_key_sees_only_the_models_in_its_scope(live_server: LiveServer, mock: LLMModel) -> None:
    mock_model(mock.llm_provider, model="mock-2", name="Other", key="other")
    client = sdk(live_server, app_key(model_keys=["other"]))

    assert [m.id for m in client.models.list()] == ["other"]
    assert client.models.retrieve("other").id == "other"


def test_unknown_disabled_and_out_of_scope_models_get_the_same_404(
    live_server: LiveServer, mock: LLMModel
) -> None:
    mock_model(mock.llm_provider, model="mock-2", name="Off", key="off", enabled=False)
    mock_model(mock.llm_provider, model="mock-3", name="Hidden", key="hidden")
    secret = app_key(model_keys=["mock"])
    headers = {"Authorization": f"Bearer {secret}"}

    errors = []
    for model_id in ("nope", "off", "hidden"):
        response = httpx2.post(
            f"{live_server.url}/v1/chat/completions",
            headers=headers,
            json={"model": model_id, "messages": user_says("hi")},
        )
        assert response.status_code == 404
        error = error_of(response)
        errors.append({**error, "message": error["message"].replace(model_id, "<id>")})
    assert errors[0]["code"] == "model_not_found"
    assert errors[0] == errors[1] == errors[2]
    with pytest.raises(openai.NotFoundError):
        sdk(live_server, secret).models.retrieve("hidden")


# --- chat completions -----------------------------------------------------------------------


def test_a_chat_completion_through_a_key_and_a_preset(
    live_server: LiveServer, scripted: tuple[ScriptedUpstream, LiveServer]
) -> None:
    upstream, server = scripted
    model = stub_model(server)
    make_preset(model, key="default", name="Default", llm_options_overrides={"temperature": 0.1})
    make_preset(
        model, key="hot", name="Hot", llm_options_overrides={"temperature": 1.5, "top_p": 0.5}
    )
    client = sdk(live_server, app_key())

    bare = client.chat.completions.create(model="stub", messages=user_says("hi"))
    hot = client.chat.completions.create(model="stub@hot", messages=user_says("hi"))
    mine = client.chat.completions.create(
        model="stub@hot", messages=user_says("hi"), temperature=0.7
    )

    assert bare.choices[0].message.content == "Hello"
    assert bare.usage is not None and bare.usage.prompt_tokens == 7
    assert [b["temperature"] for b in upstream.bodies] == [0.1, 1.5, 0.7]
    assert upstream.bodies[2]["top_p"] == 0.5
    assert upstream.bodies[2]["model"] == "stub-model"
    assert hot.choices[0].message.content == mine.choices[0].message.content == "Hello"


def test_a_streamed_chat_completion_honours_include_usage_both_ways(
    live_server: LiveServer, mock: LLMModel
) -> None:
    client = sdk(live_server, app_key())
    plain = client.chat.completions.create(model="mock@hot", messages=user_says("hi"))
    expected = plain.choices[0].message.content or ""

    without = list(
        client.chat.completions.create(model="mock", messages=user_says("hi"), stream=True)
    )
    with_usage = list(
        client.chat.completions.create(
            model="mock",
            messages=user_says("hi"),
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert streamed_text(without).split(" [#")[0] == expected.split(" [#")[0]
    assert all(c.usage is None for c in without)
    assert with_usage[-1].usage is not None and with_usage[-1].usage.completion_tokens > 0


def test_the_request_is_asked_for_usage_upstream_and_usage_is_recorded(
    live_server: LiveServer, scripted: tuple[ScriptedUpstream, LiveServer]
) -> None:
    upstream, server = scripted
    stub_model(server)
    secret = app_key()
    key_id = find_key("app").id

    assert (
        streamed_text(
            sdk(live_server, secret).chat.completions.create(
                model="stub", messages=user_says("hi"), stream=True
            )
        )
        == "Hello"
    )
    with pytest.raises(openai.AuthenticationError):
        sdk(live_server, "mdk-unknown").chat.completions.create(
            model="stub", messages=user_says("x")
        )

    assert upstream.bodies[0]["stream_options"] == {"include_usage": True}
    streamed, refused = _recorded(live_server, 2)
    assert (streamed.status, streamed.stream, streamed.app_key_id) == (200, True, key_id)
    assert (streamed.prompt_tokens, streamed.completion_tokens, streamed.estimated) == (7, 2, False)
    assert streamed.model_key == "stub" and streamed.ttft_ms is not None
    assert (refused.status, refused.error_code, refused.app_key_id) == (
        401,
        "invalid_api_key",
        None,
    )


def _recorded(live_server: LiveServer, count: int) -> list[usage.UsageEvent]:
    """The usage events the served app recorded, once there are `count` of them."""
    buffer = live_server.app.extensions["usage"]
    events: list[usage.UsageEvent] = []
    wait_for(lambda: events.extend(buffer.take_all()) or len(events) >= count)
    return events


def test_usage_is_estimated_when_the_provider_sends_none(live_server: LiveServer) -> None:
    upstream = ScriptedUpstream(["Hello there"], usage=None)
    server = LiveServer(upstream).start()
    try:
        stub_model(server)
        list(
            sdk(live_server, app_key()).chat.completions.create(
                model="stub", messages=user_says("hi"), stream=True
            )
        )
        (event,) = _recorded(live_server, 1)
    finally:
        server.stop()
    assert event.estimated is True
    assert event.prompt_tokens and event.prompt_tokens > 0
    assert event.completion_tokens == 2


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["missing", "unknown", "revoked", "expired"])
def test_a_bad_key_gets_401_invalid_api_key(
    live_server: LiveServer, mock: LLMModel, how: str
) -> None:
    secret = app_key(expires_days=1e-9) if how == "expired" else app_key()
    if how == "revoked":
        revoke_key(find_key("app"))
    headers = {} if how == "missing" else {"Authorization": f"Bearer {secret}"}
    if how == "unknown":
        headers = {"Authorization": "Bearer mdk-not-a-key"}

    response = httpx2.get(f"{live_server.url}/v1/models", headers=headers)

    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_api_key"


def test_a_revoked_key_stops_working_within_about_a_second(
    live_server: LiveServer, mock: LLMModel
) -> None:
    client = sdk(live_server, app_key())
    assert client.models.list().data
    revoke_key(find_key("app"))
    revoked_at = time.monotonic()

    def refused() -> bool:
        try:
            client.models.list()
        except openai.AuthenticationError:
            return True
        return False

    assert wait_for(refused, timeout=10, interval=0.05)
    assert time.monotonic() - revoked_at < 2.5


def test_a_prompt_too_long_gets_context_length_exceeded_with_its_numbers(
    live_server: LiveServer, mock: LLMModel
) -> None:
    mock.context_window_tokens = 50
    db.session.commit()
    client = sdk(live_server, app_key())

    def refusal() -> openai.BadRequestError | None:
        try:
            client.chat.completions.create(
                model="mock", messages=user_says("word " * 200), max_tokens=10
            )
        except openai.BadRequestError as error:
            return error
        return None

    error = wait_for(refusal)
    assert error is not None and error.code == "context_length_exceeded"
    for number in ("50", "10", "40"):
        assert number in error.message
    assert str(error.body["message"]).count("tokens") >= 3


def test_a_capability_the_model_lacks_gets_unsupported_parameter(
    live_server: LiveServer, mock: LLMModel
) -> None:
    client = sdk(live_server, app_key())
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}

    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="mock", messages=user_says("hi"), tools=[tool])

    assert refused.value.code == "unsupported_parameter"
    assert refused.value.param == "tools" and "tool calling" in refused.value.message


def test_requests_per_minute_are_limited_with_retry_after(
    live_server: LiveServer, mock: LLMModel
) -> None:
    headers = {"Authorization": f"Bearer {app_key(rpm=1)}"}
    body = {"model": "mock", "messages": user_says("hi")}
    url = f"{live_server.url}/v1/chat/completions"

    assert httpx2.post(url, headers=headers, json=body).status_code == 200
    refused = httpx2.post(url, headers=headers, json=body)

    assert refused.status_code == 429
    assert error_of(refused)["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_tokens_per_minute_are_limited_with_retry_after(
    live_server: LiveServer, scripted: tuple[ScriptedUpstream, LiveServer]
) -> None:
    _upstream, server = scripted
    stub_model(server)
    headers = {"Authorization": f"Bearer {app_key(tpm=9)}"}
    body = {"model": "stub", "messages": user_says("hi")}
    url = f"{live_server.url}/v1/chat/completions"

    # Charged 7 + 2 tokens (the provider's usage): the window is full.
    assert httpx2.post(url, headers=headers, json=body).status_code == 200
    refused = httpx2.post(url, headers=headers, json=body)

    assert refused.status_code == 429
    assert error_of(refused)["code"] == "rate_limit_exceeded"
    assert "tokens per minute" in error_of(refused)["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


@pytest.mark.parametrize(("fault", "status"), [("status=422", 422), ("status=500", 502)])
def test_upstream_client_errors_are_kept_and_server_errors_become_502(
    live_server: LiveServer, fault: str, status: int
) -> None:
    provider = mock_provider(live_server.url, api_key=PROVIDER_KEY, headers={FAULT: fault})
    mock_model(provider)
    response = httpx2.post(
        f"{live_server.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {app_key()}"},
        json={"model": "mock", "messages": user_says("hi")},
    )

    assert response.status_code == status
    assert "mock fault" in error_of(response)["message"]
    assert PROVIDER_KEY not in response.text


@pytest.mark.parametrize("fault", ["error=2", "cut=2"])
def test_an_upstream_failure_mid_stream_raises_in_the_sdk(
    live_server: LiveServer, fault: str
) -> None:
    mock_model(mock_provider(live_server.url, headers={FAULT: fault}))
    stream = sdk(live_server, app_key()).chat.completions.create(
        model="mock", messages=user_says("hello there, tell me a long story"), stream=True
    )

    received = []
    with pytest.raises(openai.APIError):
        for piece in stream:
            received.append(piece)
    assert received, "the failure came after the first chunk"


def test_errors_under_v1_are_json_never_html(live_server: LiveServer, mock: LLMModel) -> None:
    headers = {"Authorization": f"Bearer {app_key()}"}
    base = f"{live_server.url}/v1"

    no_route = httpx2.get(f"{base}/nothing", headers=headers)
    wrong_method = httpx2.get(f"{base}/chat/completions", headers=headers)
    not_json = httpx2.post(f"{base}/chat/completions", headers=headers, content=b"{nope")

    assert (no_route.status_code, wrong_method.status_code, not_json.status_code) == (404, 405, 400)
    for response in (no_route, wrong_method, not_json):
        assert response.headers["Content-Type"].startswith("application/json")
        assert error_of(response)["message"]


# --- relay -------------------------------------------------------------------------------


def test_a_provider_secret_echoed_in_a_stream_is_scrubbed_even_split_across_chunks(
    live_server: LiveServer,
) -> None:
    upstream = ScriptedUpstream(
        ["key: ", PROVIDER_KEY, " and again ", PROVIDER_KEY[:9], PROVIDER_KEY[9:], " end"]
    )
    server = LiveServer(upstream).start()
    try:
        stub_model(server, api_key=PROVIDER_KEY)
        client = sdk(live_server, app_key())
        text = streamed_text(
            client.chat.completions.create(model="stub", messages=user_says("hi"), stream=True)
        )
        whole = client.chat.completions.create(model="stub", messages=user_says("hi"))
    finally:
        server.stop()

    assert PROVIDER_KEY not in text and PROVIDER_KEY[:9] not in text
    assert text == "key: [redacted] and again [redacted] end"
    assert whole.choices[0].message.content == text


def test_a_client_that_leaves_closes_the_upstream_within_two_seconds(
    live_server: LiveServer,
) -> None:
    upstream = SilentUpstream(first_reply=stalled_stream())
    try:
        provider = mock_provider(upstream.url, name="Stalling", api_prefix="/v1")
        mock_model(provider, key="stalling")
        stream = sdk(live_server, app_key()).chat.completions.create(
            model="stalling", messages=user_says("hi"), stream=True
        )
        first = next(iter(stream))
        assert first.choices[0].delta.content == "first"
        assert upstream.open == 1
        stream.close()
        left_at = time.monotonic()

        assert wait_for(lambda: upstream.open == 0, timeout=10)
        assert time.monotonic() - left_at < 2.0
        (event,) = _recorded(live_server, 1)
        assert (event.status, event.error_code) == (499, "client_closed")
    finally:
        upstream.stop()


def test_a_key_in_use_is_marked_used(live_server: LiveServer, mock: LLMModel) -> None:
    sdk(live_server, app_key()).chat.completions.create(model="mock", messages=user_says("hi"))

    def marked() -> bool:
        db.session.expire_all()
        return find_key("app").last_used_at is not None

    assert wait_for(marked)


def test_a_model_that_cannot_stream_refuses_a_stream_naming_it(
    live_server: LiveServer, mock: LLMModel
) -> None:
    mock.supports_streaming = False
    db.session.commit()
    client = sdk(live_server, app_key())

    def refusal() -> openai.BadRequestError | None:
        try:
            client.chat.completions.create(model="mock", messages=user_says("hi"), stream=True)
        except openai.BadRequestError as error:
            return error
        return None

    error = wait_for(refusal)
    assert error is not None and (error.code, error.param) == ("unsupported_parameter", "stream")


def test_known_keys_keep_working_while_the_database_is_away(
    cut_database: tuple[LiveServer, TcpProxy],
) -> None:
    server, proxy = cut_database
    mock_model(mock_provider(server.url))
    client = sdk(server, app_key())
    assert client.chat.completions.create(model="mock", messages=user_says("hi")).choices
    proxy.cut()  # every connection to PostgreSQL drops; new ones are refused

    # Past several version checks, each one failing: the snapshot keeps serving.
    until = time.monotonic() + 3 * CHECK_INTERVAL_SECONDS
    while time.monotonic() < until:
        reply = client.chat.completions.create(model="mock", messages=user_says("hi"))
        assert reply.choices[0].message.content
    streamed = client.chat.completions.create(model="mock", messages=user_says("hi"), stream=True)
    assert streamed_text(streamed)
    with pytest.raises(openai.AuthenticationError):
        sdk(server, "mdk-unknown").models.list()
    proxy.restore()
