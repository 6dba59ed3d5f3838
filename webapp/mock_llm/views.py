"""A mock of the OpenAI chat API for development and tests, with fault injection.

Registered only when MOCK_LLM_ENABLED is set; docs/mock_llm.md describes the API and the
X-Mock-Fault header.
"""

from __future__ import annotations

import errno
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue

from webapp.mock_llm.replies import (
    Completion,
    Faults,
    InvalidCompletionRequest,
    InvalidFaultHeader,
    build_completion,
    fault_error_body,
    parse_completion_request,
    parse_faults,
    unsupported_feature_error,
)

FAULT_HEADER = "X-Mock-Fault"
IN_BAND_ERROR = {"error": {"message": "mock fault: in-band error", "type": "server_error"}}

bp = Blueprint("mock_llm", __name__, url_prefix="/mock_llm/v1")


@dataclass(frozen=True)
class StreamOutcome:
    """How one stream ended: "completed", "disconnected", "cut" or "error"."""

    completion_id: str
    model: str
    outcome: str


class MockLLMRecord:
    """What the mock saw, for tests: the outcome of each stream, oldest first.

    Kept in `app.extensions["mock_llm"]`. Bounded, so a long-running dev server does not grow.
    """

    def __init__(self, limit: int = 1000) -> None:
        self._lock = threading.Lock()
        self._outcomes: deque[StreamOutcome] = deque(maxlen=limit)

    def add(self, outcome: StreamOutcome) -> None:
        """Record how a stream ended (called from server threads)."""
        with self._lock:
            self._outcomes.append(outcome)

    def outcomes(self) -> list[StreamOutcome]:
        """A snapshot of the recorded stream outcomes."""
        with self._lock:
            return list(self._outcomes)


class MockStreamCut(ConnectionResetError):
    """Raised inside a stream to drop the connection mid-body (the `cut` fault).

    A connection reset, because WSGI servers (werkzeug, gunicorn) handle that as a client that
    went away: they close the socket without the closing chunk and without logging a traceback
    for a fault that was asked for.
    """

    def __init__(self) -> None:
        super().__init__(errno.ECONNRESET, "mock fault: stream cut")


@bp.record_once
def _create_record(state: BlueprintSetupState) -> None:
    state.app.extensions["mock_llm"] = MockLLMRecord()


@bp.before_request
def apply_request_faults() -> ResponseReturnValue | None:
    """Read X-Mock-Fault; sleep for `delay`, then answer an injected `status` if asked."""
    try:
        faults = parse_faults(request.headers.get(FAULT_HEADER))
    except InvalidFaultHeader as exc:
        return _error(400, f"invalid {FAULT_HEADER} header: {exc}")
    g.mock_faults = faults
    if faults.delay:
        time.sleep(faults.delay)
    if faults.status is not None:
        response = jsonify(fault_error_body(faults.status))
        response.status_code = faults.status
        if faults.status == 429:
            response.headers["Retry-After"] = "1"
        return response
    return None


@bp.get("/models")
def list_models() -> ResponseReturnValue:
    return jsonify(
        object="list",
        data=[
            {"id": "mock", "object": "model", "created": int(time.time()), "owned_by": "mock_llm"}
        ],
    )


@bp.post("/chat/completions")
def chat_completions() -> ResponseReturnValue:
    try:
        chat = parse_completion_request(_json_body())
    except InvalidCompletionRequest as exc:
        return _error(400, str(exc))
    refusal = unsupported_feature_error(chat)
    if refusal is not None:
        return jsonify(refusal), 400
    completion = build_completion(
        chat,
        completion_id=f"mockcmpl-{secrets.token_hex(12)}",
        created=int(time.time()),
        tag=secrets.token_hex(4),
    )
    if not chat.stream:
        return jsonify(completion.body())
    faults: Faults = g.mock_faults
    delay = faults.chunk_delay
    if delay is None:
        delay = float(current_app.config["MOCK_LLM_STREAM_DELAY"])
    frames = _stream_frames(
        completion,
        include_usage=chat.include_usage,
        delay=delay,
        faults=faults,
        record=current_app.extensions["mock_llm"],
    )
    return Response(
        frames,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _json_body() -> Any:
    """The decoded body, or None when it is not JSON."""
    try:
        return json.loads(request.get_data())
    # RecursionError: deeply nested arrays exhaust the decoder; still the client's fault.
    except (ValueError, RecursionError):
        return None


def _error(status: int, message: str) -> ResponseReturnValue:
    return jsonify(error={"message": message, "type": "invalid_request_error"}), status


def _stream_frames(
    completion: Completion,
    *,
    include_usage: bool,
    delay: float,
    faults: Faults,
    record: MockLLMRecord,
) -> Iterator[str]:
    """The SSE frames of one completion; records how the stream ended.

    Runs outside the request context: everything it needs is passed in.
    """
    # Stays "disconnected" when the server closes the generator at a yield (GeneratorExit):
    # that is how a client that went away shows up.
    outcome = "disconnected"
    stop_after = faults.cut if faults.cut is not None else faults.error
    try:
        yield _sse(completion.chunk({"role": "assistant"}))
        for index, delta in enumerate(completion.stream_deltas()[:stop_after]):
            if index and delay:
                time.sleep(delay)
            yield _sse(completion.chunk(delta))
        if faults.cut is not None:
            outcome = "cut"
            raise MockStreamCut()
        if faults.error is not None:
            yield _sse(IN_BAND_ERROR)
            outcome = "error"
            return
        usage = completion.usage if include_usage else None
        yield _sse(completion.chunk({}, completion.finish_reason, usage))
        yield "data: [DONE]\n\n"
        outcome = "completed"
    finally:
        record.add(StreamOutcome(completion.id, completion.model, outcome))


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"
