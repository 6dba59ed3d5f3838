"""The gateway's service parts without HTTP: the catalog cache and the relay's line filter."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from secrets import token_hex
from typing import Any

import pytest
import redis
from flask import Flask
from sqlalchemy import event, update
from sqlalchemy.exc import OperationalError

from tests.support.app import make_config
from tests.support.cluster import REDIS_URL, redis_answers, require_service
from tests.support.factories import make_preset
from tests.support.gateway import app_key, chunk
from tests.support.mock_api import mock_model, mock_provider
from tests.support.waiting import wait_for
from webapp import create_app
from webapp.extensions import db
from webapp.llm import results as codes
from webapp.llm.prepare import PreparedChat, prepare_chat
from webapp.llm.relay import LineFilter
from webapp.llm.results import Result
from webapp.llm.specs import ModelSpec, PresetSpec, ProviderSpec
from webapp.models.gateway import AppKey
from webapp.models.types import utcnow
from webapp.services import gateway, gateway_catalog
from webapp.services.app_keys import find_key, revoke_key
from webapp.services.gateway import ApiError, JsonReply

SECRET = "sk-provider-SECRET-0123456789"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(app: Flask) -> Clock:
    clock = Clock()
    app.extensions["gateway_catalog"] = gateway_catalog.Catalog(clock=clock)
    return clock


@pytest.fixture
def statements(app: Flask) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(db.engine, "before_cursor_execute", count)
    yield seen
    event.remove(db.engine, "before_cursor_execute", count)


def model_ids(answer: JsonReply | ApiError) -> list[str]:
    assert isinstance(answer, JsonReply), answer
    return [m["id"] for m in json.loads(answer.body)["data"]]


# --- the catalog ------------------------------------------------------------------------


def test_a_known_key_and_its_models_cost_no_query(
    app: Flask, clock: Clock, statements: list[str]
) -> None:
    model = mock_model(mock_provider("http://127.0.0.1:9"))
    make_preset(model, key="fast", name="Fast")
    secret = app_key()
    assert model_ids(gateway.list_models(secret)) == ["mock", "mock@fast"]
    statements.clear()

    for _ in range(5):
        assert model_ids(gateway.list_models(secret)) == ["mock", "mock@fast"]
        assert isinstance(gateway.list_models("mdk-unknown"), ApiError)

    assert statements == []


def revoke_elsewhere(name: str) -> None:
    """Revoke a key the way another instance would: not through this process's session."""
    with db.engine.begin() as connection:
        connection.execute(
            update(AppKey)
            .where(AppKey.name == name)
            .values(revoked_at=utcnow(), updated_at=utcnow())
        )


def test_a_change_committed_here_is_seen_at_once(app: Flask, clock: Clock) -> None:
    secret = app_key()
    assert model_ids(gateway.list_models(secret)) == []

    revoke_key(find_key("app"))

    assert gateway.list_models(secret) == gateway.INVALID_API_KEY


def test_a_change_made_elsewhere_is_seen_at_the_next_check(app: Flask, clock: Clock) -> None:
    secret = app_key()
    assert model_ids(gateway.list_models(secret)) == []
    revoke_elsewhere("app")
    assert model_ids(gateway.list_models(secret)) == []  # within the interval: the snapshot

    clock.now += gateway_catalog.CHECK_INTERVAL_SECONDS

    assert gateway.list_models(secret) == gateway.INVALID_API_KEY


@pytest.fixture
def redis_server() -> Iterator[redis.Redis]:
    require_service(redis_answers(), f"Redis does not answer at {REDIS_URL}")
    server = redis.Redis.from_url(REDIS_URL)
    yield server
    server.close()


@pytest.mark.usefixtures("redis_server")
def test_a_change_announced_on_redis_is_seen_before_the_next_check(
    app: Flask, clock: Clock
) -> None:
    secret = app_key()
    assert model_ids(gateway.list_models(secret)) == []
    prefix = f"modeldesk-test-{token_hex(6)}"
    listening = gateway_catalog.ChangeFeed(REDIS_URL, prefix)
    listening.subscribe(gateway_catalog.catalog().invalidate)
    revoke_elsewhere("app")

    def seen() -> bool:
        gateway_catalog.ChangeFeed(REDIS_URL, prefix).publish()
        return gateway.list_models(secret) == gateway.INVALID_API_KEY

    assert wait_for(seen, interval=0.1)


def test_deployments_sharing_a_redis_do_not_hear_each_others_changes(
    redis_server: redis.Redis,
) -> None:
    production, staging = (f"modeldesk-test-{token_hex(6)}" for _ in range(2))
    heard = {production: 0, staging: 0}
    feeds = {prefix: gateway_catalog.ChangeFeed(REDIS_URL, prefix) for prefix in heard}
    for prefix, feed in feeds.items():
        feed.subscribe(lambda p=prefix: heard.__setitem__(p, heard[p] + 1))
    channels = [feed.channel for feed in feeds.values()]
    # Two channels with one listener each (one shared channel would count two on it).
    assert wait_for(lambda: [n for _, n in redis_server.pubsub_numsub(*channels)] == [1, 1])
    assert wait_for(lambda: heard == {production: 1, staging: 1})  # each feed's first check

    for _ in range(5):
        feeds[production].publish()
    assert wait_for(lambda: heard[production] == 6)
    feeds[staging].publish()

    assert wait_for(lambda: heard == {production: 6, staging: 2})


def test_the_last_snapshot_serves_while_the_database_is_away(
    app: Flask, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    mock_model(mock_provider("http://127.0.0.1:9"))
    secret = app_key()
    assert model_ids(gateway.list_models(secret)) == ["mock"]

    def away() -> None:
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(gateway_catalog, "_version", away)
    clock.now += 10 * gateway_catalog.CHECK_INTERVAL_SECONDS

    assert model_ids(gateway.list_models(secret)) == ["mock"]


def test_no_snapshot_and_no_database_is_a_503(
    app: Flask, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def away() -> None:
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(gateway_catalog, "_version", away)

    answer = gateway.chat_completion("mdk-any", {"model": "mock", "messages": []})

    assert isinstance(answer, ApiError) and answer.status == 503


def test_a_request_body_that_is_not_an_object_is_a_400(app: Flask, clock: Clock) -> None:
    answer = gateway.chat_completion(app_key(), ["not", "an", "object"])

    assert isinstance(answer, ApiError) and (answer.status, answer.type) == (
        400,
        "invalid_request_error",
    )


# --- the relay's lines -------------------------------------------------------------------


def frames(lines: LineFilter, *raw: str) -> list[bytes]:
    out = [lines.frame(line.rstrip("\n")) for line in raw]
    return [frame for frame in out if frame is not None]


def test_a_line_with_nothing_to_scrub_is_passed_on_byte_for_byte() -> None:
    # Spacing json.dumps would not produce: a re-serialized line would differ.
    line = 'data: {"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}'

    for secrets in ([], [SECRET]):
        assert frames(LineFilter(secrets, include_usage=False), line) == [line.encode() + b"\n\n"]


def test_a_secret_split_across_chunks_is_masked() -> None:
    lines = LineFilter([SECRET], include_usage=False)

    out = frames(lines, chunk("a " + SECRET[:5]), chunk(SECRET[5:] + " b"), chunk(None, "stop"))

    contents = [json.loads(frame[6:])["choices"][0]["delta"].get("content", "") for frame in out]
    assert "".join(contents) == "a [redacted] b"


def test_usage_the_client_did_not_ask_for_is_dropped_but_kept_for_the_record() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 4}
    on_its_own = 'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}'
    with_finish = chunk(None, "stop", usage=usage)

    dropped = LineFilter([], include_usage=False)
    assert frames(dropped, on_its_own) == []
    (stripped,) = frames(dropped, with_finish)
    assert "usage" not in json.loads(stripped[6:])
    assert dropped.usage == usage

    kept = LineFilter([], include_usage=True)
    assert frames(kept, on_its_own) == [on_its_own.encode() + b"\n\n"]
    assert kept.usage == usage


def test_done_is_held_for_the_end_and_what_follows_it_is_read_but_not_sent() -> None:
    lines = LineFilter([], include_usage=False)

    assert frames(lines, chunk("x"), "data: [DONE]", chunk("late"), ": comment") == [
        chunk("x").rstrip("\n").encode() + b"\n\n"
    ]
    assert lines.done


# --- the engine's API-caller inputs ------------------------------------------------------

TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def api_model() -> ModelSpec:
    preset = PresetSpec(
        id=1,
        key="default",
        name="Default",
        llm_options_overrides={"temperature": 0.5, "tools": [TOOL]},
        is_default=True,
    )
    provider = ProviderSpec(name="P", endpoint="http://127.0.0.1:9/v1")
    return ModelSpec(
        id=1,
        model="m",
        name="M",
        provider=provider,
        supports_streaming=True,
        supports_tool_calling=True,
        presets=(preset,),
    )


def test_request_only_options_come_from_the_request_never_from_a_preset() -> None:
    conversation = [{"role": "user", "content": "hi"}]

    prepared = prepare_chat(
        api_model(),
        client=None,
        stream=True,
        messages=conversation,
        llm_options={"top_p": 0.9},
        request_options={"stream_options": {"continuous_usage_stats": True}},
    )

    assert isinstance(prepared, PreparedChat)
    assert "tools" not in prepared.request
    assert prepared.request["messages"] == conversation
    assert (prepared.request["temperature"], prepared.request["top_p"]) == (0.5, 0.9)
    assert prepared.request["stream_options"] == {
        "continuous_usage_stats": True,
        "include_usage": True,
    }


def test_the_chat_pages_inputs_still_take_a_presets_tools() -> None:
    prepared = prepare_chat(api_model(), client=None, user_text="hi")

    assert isinstance(prepared, PreparedChat) and prepared.request["tools"] == [TOOL]


def test_a_messages_list_is_checked_and_not_mixed_with_the_other_inputs() -> None:
    mixed = prepare_chat(api_model(), client=None, messages=[], user_text="hi")
    bad_role = prepare_chat(api_model(), client=None, messages=[{"role": "robot"}])
    only_system = prepare_chat(api_model(), client=None, messages=[{"role": "system"}])

    assert isinstance(mixed, Result) and mixed.code == codes.INVALID_INPUT
    assert isinstance(bad_role, Result) and "messages[0].role" in bad_role.errors[0]
    assert isinstance(only_system, Result) and only_system.code == codes.EMPTY_PROMPT


@pytest.mark.usefixtures("redis_server")
def test_an_apps_change_feed_is_under_its_redis_prefix(_migrated: str, tmp_path: Path) -> None:
    settings = make_config(_migrated, str(tmp_path), REDIS_URL=REDIS_URL, REDIS_KEY_PREFIX="blue")

    served = create_app(settings)

    assert served.extensions["gateway_change_feed"].channel == "blue:gateway:config-changed"
    with served.app_context():
        db.engine.dispose()
