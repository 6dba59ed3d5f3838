"""The OpenAI-compatible gateway: authenticate an app key, resolve the model id, apply the
key's limits, prepare the request with the engine (the chat's own rules: preset, option
merge, capability preflight, token budget) and relay the provider's answer; record usage.

Nothing here reads the request: the view passes the bearer secret and the decoded body, and
gets back an `ApiError`, a `JsonReply` or a `StreamRelay` to send. Known keys and models cost
no query (see gateway_catalog); usage is recorded in memory (webapp.services.usage).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import openai
from flask import Flask, current_app
from limits import RateLimitItemPerMinute
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from webapp.extensions import db, limiter
from webapp.llm import results as codes
from webapp.llm.budget import default_estimator, estimate_prompt_tokens
from webapp.llm.clients import client_for
from webapp.llm.errors import describe_upstream_error
from webapp.llm.network import Cancellation
from webapp.llm.options import REQUEST_ONLY_OPTIONS
from webapp.llm.prepare import PreparedChat, prepare_chat
from webapp.llm.relay import RelayOutcome, StreamRelay, estimate_tokens, open_stream, send_raw
from webapp.llm.results import Result
from webapp.models.gateway import AppKey
from webapp.models.types import utcnow
from webapp.services import usage
from webapp.services.app_keys import AppKeyGrant, hash_secret
from webapp.services.gateway_catalog import (
    CatalogUnavailable,
    Route,
    Snapshot,
    catalog,
    init_catalog,
)
from webapp.services.llm_config import client_settings

log = logging.getLogger(__name__)

# Keys of a request body that are not options of the merge.
_REQUEST_SHAPE = frozenset({"model", "messages", "stream", "stream_options"})
# Upstream refusals about ModelDesk's own credentials: not the caller's fault.
_OUR_CREDENTIALS = frozenset({401, 403, 407})
# A silent provider still gets a frame this often, so a client that left is noticed soon.
HEARTBEAT_SECONDS = 0.5
LAST_USED_EVERY_SECONDS = 60.0
_RPM = "gateway-rpm"
_LAST_USED = "gateway_last_used"
_TPM = "gateway-tpm"


@dataclass(frozen=True)
class ApiError:
    """A failure the OpenAI way: the HTTP status and the `error` object."""

    status: int
    message: str
    type: str
    code: str | None = None
    param: str | None = None
    retry_after: int | None = None

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "code": self.code,
                "param": self.param,
            }
        }


@dataclass(frozen=True)
class JsonReply:
    """A JSON answer, already serialized (the provider's own bytes, for a completion)."""

    body: str
    status: int = 200


INVALID_API_KEY = ApiError(
    401,
    "Incorrect API key provided: send an app key as 'Authorization: Bearer <key>'.",
    "invalid_request_error",
    "invalid_api_key",
)


def model_not_found(model_id: str) -> ApiError:
    # One answer for unknown, disabled and out-of-scope ids: a key learns nothing it may
    # not use.
    return ApiError(
        404,
        f"The model '{model_id}' does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
        "model",
    )


def invalid_request(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, "invalid_request_error", None, param)


UNAVAILABLE = ApiError(
    503, "The gateway's configuration cannot be read right now.", "server_error", "unavailable"
)


def init_gateway(app: Flask) -> None:
    init_catalog(app)
    app.extensions[_LAST_USED] = _LastUsed()


# --- authentication and the catalogue -----------------------------------------------------


def _grant_for(snapshot: Snapshot, secret: str | None) -> AppKeyGrant | None:
    if not secret:
        return None
    grant = snapshot.grants.get(hash_secret(secret))
    return None if grant is None or grant.expired(utcnow()) else grant


def _authenticated(secret: str | None) -> tuple[Snapshot, AppKeyGrant] | ApiError:
    try:
        snapshot = catalog().current()
    except CatalogUnavailable:
        return UNAVAILABLE
    grant = _grant_for(snapshot, secret)
    return INVALID_API_KEY if grant is None else (snapshot, grant)


def _model_object(route: Route) -> dict[str, Any]:
    return {"id": route.id, "object": "model", "created": route.created, "owned_by": route.owned_by}


def list_models(secret: str | None) -> JsonReply | ApiError:
    """The model ids this key may use, as `GET /v1/models` lists them."""
    found = _authenticated(secret)
    if isinstance(found, ApiError):
        return found
    snapshot, grant = found
    data = [_model_object(r) for r in snapshot.routes.values() if grant.allows(r.id)]
    return JsonReply(json.dumps({"object": "list", "data": sorted(data, key=lambda m: m["id"])}))


def get_model(secret: str | None, model_id: str) -> JsonReply | ApiError:
    """One model id, as `GET /v1/models/{id}` shows it."""
    found = _authenticated(secret)
    if isinstance(found, ApiError):
        return found
    snapshot, grant = found
    route = snapshot.route(model_id)
    if route is None or not grant.allows(route.id):
        return model_not_found(model_id)
    return JsonReply(json.dumps(_model_object(route)))


# --- limits ---------------------------------------------------------------------------------


def _strategy() -> FixedWindowRateLimiter:
    # Flask-Limiter's storage: memory in one process, Redis when instances share limits.
    # A fixed window charges a cost even past the limit, so tokens used beyond it still count.
    return FixedWindowRateLimiter(limiter.storage)


def _retry_after(strategy: FixedWindowRateLimiter, item: Any, counter: tuple[str, ...]) -> int:
    reset = strategy.get_window_stats(item, *counter).reset_time
    return max(1, math.ceil(reset - time.time()))


def _rate_limited(limit: str, retry_after: int) -> ApiError:
    return ApiError(
        429,
        f"Rate limit reached for this key ({limit}); try again in {retry_after} s.",
        "requests",
        "rate_limit_exceeded",
        retry_after=retry_after,
    )


def _check_rpm(call: _Call, grant: AppKeyGrant) -> ApiError | None:
    if grant.rpm is None:
        return None
    strategy, item, counter = _strategy(), RateLimitItemPerMinute(grant.rpm), call.counter(_RPM)
    if strategy.hit(item, *counter):
        return None
    return _rate_limited(f"{grant.rpm} requests per minute", _retry_after(strategy, item, counter))


def _check_tpm(call: _Call, grant: AppKeyGrant, prompt_tokens: int) -> ApiError | None:
    """Admit when the window still has room for the prompt (a prompt larger than a whole
    window is admitted into an empty one, or it could never run)."""
    if grant.tpm is None:
        return None
    strategy, item, counter = _strategy(), RateLimitItemPerMinute(grant.tpm), call.counter(_TPM)
    if strategy.test(item, *counter, cost=min(max(prompt_tokens, 1), grant.tpm)):
        return None
    return _rate_limited(f"{grant.tpm} tokens per minute", _retry_after(strategy, item, counter))


def _charge_tokens(call: _Call, grant: AppKeyGrant, tokens: int) -> None:
    if grant.tpm is not None and tokens > 0:
        _strategy().hit(RateLimitItemPerMinute(grant.tpm), *call.counter(_TPM), cost=tokens)


# --- chat completions -----------------------------------------------------------------------


@dataclass
class _Call:
    """One chat completion on its way: what usage and limits need to know of it."""

    grant: AppKeyGrant | None
    model_id: str | None
    stream: bool
    started: float
    route: Route | None = None
    prompt_estimate: int | None = None
    # Read in the request (a stream's tokens are charged after its context is gone). Limit
    # counters live under it: a key id is unique only within one database, and several
    # deployments (or test runs) may share a Redis.
    counters_prefix: str = field(default_factory=lambda: current_app.config["REDIS_KEY_PREFIX"])

    def counter(self, name: str) -> tuple[str, str, str]:
        """The identifiers of this call's key's `name` counter."""
        assert self.grant is not None
        return (self.counters_prefix, name, str(self.grant.id))

    def record(self, status: int, error_code: str | None = None, **tokens: Any) -> None:
        route = self.route
        usage.record(
            usage.UsageEvent(
                source=usage.GATEWAY,
                status=status,
                error_code=error_code,
                total_ms=round((time.perf_counter() - self.started) * 1000, 2),
                stream=self.stream,
                model_key=self.model_id,
                llm_model_id=route.model.id if route else None,
                preset_key=_preset_key(route),
                app_key_id=self.grant.id if self.grant else None,
                **tokens,
            )
        )

    def failed(self, error: ApiError) -> ApiError:
        self.record(error.status, error.code or error.type)
        return error


def _preset_key(route: Route | None) -> str | None:
    if route is None:
        return None
    preset = route.preset or route.model.default_preset
    return preset.key if preset else None


def chat_completion(secret: str | None, body: Any) -> JsonReply | StreamRelay | ApiError:
    """Serve one `POST /v1/chat/completions` for the app key whose secret this is."""
    started = time.perf_counter()
    is_object = isinstance(body, Mapping)
    model_id = body.get("model") if is_object else None
    call = _Call(
        None,
        model_id if isinstance(model_id, str) else None,
        bool(is_object and body.get("stream") is True),
        started,
    )
    found = _authenticated(secret)
    if isinstance(found, ApiError):
        return call.failed(found)
    snapshot, call.grant = found
    if not is_object:
        return call.failed(invalid_request("The request body must be a JSON object."))
    if call.model_id is None:
        return call.failed(invalid_request("model is required (a string).", "model"))
    call.route = snapshot.route(call.model_id)
    if call.route is None or not call.grant.allows(call.route.id):
        call.route = None
        return call.failed(model_not_found(call.model_id))
    refused = _check_rpm(call, call.grant)
    if refused is not None:
        return call.failed(refused)
    prepared = _prepare(call.route, body, call.stream)
    if isinstance(prepared, Result):
        return call.failed(_refusal(prepared, call.model_id))
    if call.grant.tpm is not None:
        call.prompt_estimate = _estimate_prompt(prepared)
        refused = _check_tpm(call, call.grant, call.prompt_estimate)
        if refused is not None:
            return call.failed(refused)
    _touch_last_used(call.grant.id)
    if call.stream:
        return _stream(call, prepared, _include_usage(body))
    return _complete(call, prepared)


def _prepare(route: Route, body: Mapping[str, Any], stream: bool) -> PreparedChat | Result:
    """The engine's request for this body: the preset of the id, the body's options as the
    call layer, its request-only options and messages as they are."""
    request_options = {k: v for k, v in body.items() if k in REQUEST_ONLY_OPTIONS}
    call_options = {
        k: v for k, v in body.items() if k not in REQUEST_ONLY_OPTIONS and k not in _REQUEST_SHAPE
    }
    return prepare_chat(
        route.model,
        client=client_for(route.model.provider, client_settings()),
        stream=stream,
        messages=body.get("messages"),
        preset=route.preset,
        llm_options=call_options,
        request_options=request_options,
    )


def _include_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, Mapping) and options.get("include_usage") is True


def _refusal(result: Result, model_id: str) -> ApiError:
    """The OpenAI error for a rule of the engine that said no."""
    message = "; ".join(result.errors)
    if result.code == codes.PROMPT_TOO_LONG:
        v = result.value
        return ApiError(
            400,
            f"This model's maximum context length is {v['max_tokens']} tokens. Your messages "
            f"are about {v['estimated_tokens']} tokens and {v['reserve_tokens']} are reserved "
            f"for the completion, so the limit for the messages is {v['limit_tokens']} tokens.",
            "invalid_request_error",
            "context_length_exceeded",
            "messages",
        )
    unsupported = result.value.get("unsupported_parameter")
    if unsupported:
        return ApiError(400, message, "invalid_request_error", "unsupported_parameter", unsupported)
    if result.code in (codes.MODEL_DISABLED, codes.PRESET_NOT_FOUND):
        return model_not_found(model_id)
    param = "messages" if result.code == codes.EMPTY_PROMPT else None
    return invalid_request(message, param)


def _estimate_prompt(prepared: PreparedChat) -> int:
    return estimate_prompt_tokens(
        prepared.request["messages"],
        message_overhead_tokens=prepared.llm_model.message_overhead_tokens,
        estimator=default_estimator(),
        model_hint=prepared.llm_model.model,
    )


def upstream_error(error: BaseException, secrets: list[str]) -> ApiError:
    """A provider failure: its client error kept (with its message, scrubbed), anything
    else — and a refusal of ModelDesk's own credentials — a 502."""
    message = describe_upstream_error(error, secrets)
    status = getattr(error, "status_code", None)
    if (
        isinstance(error, openai.APIStatusError)
        and isinstance(status, int)
        and 400 <= status < 500
        and status not in _OUR_CREDENTIALS
    ):
        body = error.body if isinstance(error.body, Mapping) else {}
        kind, code, param = (body.get(name) for name in ("type", "code", "param"))
        return ApiError(
            status,
            message,
            kind if isinstance(kind, str) else "invalid_request_error",
            code if isinstance(code, str) else None,
            param if isinstance(param, str) else None,
        )
    return ApiError(502, message, "upstream_error", "upstream_error")


def _tokens(
    call: _Call, prepared: PreparedChat, reported: Mapping[str, Any] | None, completion_text: str
) -> dict[str, Any]:
    """Prompt and completion tokens: the provider's, or counted here (and marked so)."""
    prompt = reported.get("prompt_tokens") if reported else None
    completion = reported.get("completion_tokens") if reported else None
    if isinstance(prompt, int) and isinstance(completion, int):
        return {"prompt_tokens": prompt, "completion_tokens": completion, "estimated": False}
    prompt_estimate = call.prompt_estimate
    if prompt_estimate is None:
        prompt_estimate = _estimate_prompt(prepared)
    return {
        "prompt_tokens": prompt_estimate,
        "completion_tokens": estimate_tokens(completion_text, prepared.llm_model.model),
        "estimated": True,
    }


def _complete(call: _Call, prepared: PreparedChat) -> JsonReply | ApiError:
    try:
        reply = send_raw(prepared, Cancellation())
    except Exception as error:  # the edge: whatever the provider or transport did
        return call.failed(upstream_error(error, list(prepared.secrets)))
    tokens = _tokens(call, prepared, reply.usage, reply.completion_text)
    assert call.grant is not None
    _charge_tokens(call, call.grant, tokens["prompt_tokens"] + tokens["completion_tokens"])
    elapsed = round((time.perf_counter() - call.started) * 1000, 2)
    call.record(200, ttft_ms=elapsed, **tokens)
    return JsonReply(reply.body)


def _stream(call: _Call, prepared: PreparedChat, include_usage: bool) -> StreamRelay | ApiError:
    cancellation = Cancellation()
    try:
        opened = open_stream(prepared, cancellation)
    except Exception as error:  # the edge: whatever the provider or transport did
        return call.failed(upstream_error(error, list(prepared.secrets)))

    def on_end(outcome: RelayOutcome) -> None:
        tokens = _tokens(call, prepared, outcome.usage, outcome.completion_text)
        assert call.grant is not None
        _charge_tokens(call, call.grant, tokens["prompt_tokens"] + tokens["completion_tokens"])
        # The client got a 200 before anything went wrong; the status says how it ended.
        status, code = _stream_status(outcome)
        call.record(status, code, ttft_ms=outcome.ttft_ms, **tokens)

    return StreamRelay(
        opened,
        prepared,
        cancellation,
        include_usage=include_usage,
        heartbeat_seconds=HEARTBEAT_SECONDS,
        on_end=on_end,
        started=call.started,
    )


# The status of a stream that did not complete: 499 (nginx's "client closed request") when
# the client left, 502 when the provider failed after the first byte.
CLIENT_CLOSED = 499


def _stream_status(outcome: RelayOutcome) -> tuple[int, str | None]:
    if outcome.error is None:
        return 200, None
    if outcome.disconnected:
        return CLIENT_CLOSED, "client_closed"
    return 502, "upstream_error"


# --- last used --------------------------------------------------------------------------------


class _LastUsed:
    """Marks a key used at most once a minute per key, on a thread of its own: the request
    never waits for it, and a database that is away only costs a log line."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._touched: dict[int, float] = {}

    def touch(self, engine: Engine, key_id: int) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._touched.get(key_id, -math.inf) < LAST_USED_EVERY_SECONDS:
                return
            self._touched[key_id] = now
        threading.Thread(target=_write_last_used, args=(engine, key_id), daemon=True).start()


def _write_last_used(engine: Engine, key_id: int) -> None:
    # updated_at is kept as it is: a key being used is not a configuration change, and
    # bumping it would make every instance reload the gateway's catalog.
    statement = (
        update(AppKey)
        .where(AppKey.id == key_id)
        .values(last_used_at=utcnow(), updated_at=AppKey.updated_at)
    )
    try:
        with engine.begin() as connection:
            connection.execute(statement)
    except SQLAlchemyError as error:
        log.warning("gateway: could not mark app key %s used: %s", key_id, error)


def _touch_last_used(key_id: int) -> None:
    current_app.extensions[_LAST_USED].touch(db.engine, key_id)
