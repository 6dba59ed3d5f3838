"""Stub OpenAI-compatible providers that misbehave on purpose, for the capability probes.

`StubUpstream` is a small WSGI app: it looks at what a chat request asks for (stream, tools,
response_format) and answers the way it was told to for that feature. Serve it with
`tests.support.app.LiveServer`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# How the stub answers a request that asks for a feature:
#   "text"       a plain text reply (the feature ignored)
#   "stream"     a real stream of several chunks
#   "one_piece"  a stream with the whole reply in one chunk (streaming ignored)
#   "500"        HTTP 500 (a server error: nothing learned)
#   "401"        HTTP 401 about the key (a refusal that does not name the feature)
#   "hang"       no answer for HANG_SECONDS (or until `released`), then a text reply
#   "length"     a text reply cut at max_tokens (finish_reason "length")
#   "echo_auth"  a text reply repeating the Authorization header it got
HANG_SECONDS = 3.0
REPLY = "Sure! Paris is the capital of France and it is sunny there today."


def feature_of(body: Mapping[str, Any]) -> str:
    if body.get("stream"):
        return "stream"
    if body.get("tools"):
        return "tools"
    if body.get("response_format"):
        return "response_format"
    return "plain"


class StubUpstream:
    """Answers /v1/chat/completions by the feature asked for; records every body it got."""

    def __init__(self, behaviour: Mapping[str, str]) -> None:
        self.behaviour = {"plain": "text", **behaviour}
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        # Set when the test is done, so a "hang" ends with the test, not seconds later.
        self.released = threading.Event()
        # The most requests hanging at one moment (calls made at once, not one after another).
        self.most_hanging = 0
        self._hanging = 0

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        body = json.loads(raw or "{}")
        with self._lock:
            self.bodies.append(body)
        how = self.behaviour.get(feature_of(body), "text")
        if how == "hang":
            self._hang()
            how = "text"
        if how in ("500", "401"):
            message = "internal error" if how == "500" else "invalid api key"
            return _json(start_response, int(how), {"error": {"message": message}})
        if how == "length":
            return _json(start_response, 200, _completion(body["model"], "Let me", "length"))
        if how == "echo_auth":
            echo = f"You sent {environ.get('HTTP_AUTHORIZATION', '')}"
            return _json(start_response, 200, _completion(body["model"], echo))
        if how in ("stream", "one_piece"):
            pieces = [REPLY[i : i + 10] for i in range(0, len(REPLY), 10)]
            return _sse(start_response, body["model"], pieces if how == "stream" else [REPLY])
        return _json(start_response, 200, _completion(body["model"], REPLY))

    def _hang(self) -> None:
        with self._lock:
            self._hanging += 1
            self.most_hanging = max(self.most_hanging, self._hanging)
        try:
            self.released.wait(HANG_SECONDS)
        finally:
            with self._lock:
                self._hanging -= 1


def _completion(model: str, content: str, finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "id": "stub-1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
    }


def _json(start_response: Callable[..., Any], status: int, payload: Any) -> list[bytes]:
    reasons = {200: "OK", 401: "Unauthorized", 500: "Internal Server Error"}
    start_response(f"{status} {reasons[status]}", [("Content-Type", "application/json")])
    return [json.dumps(payload).encode()]


def _sse(start_response: Callable[..., Any], model: str, pieces: list[str]) -> list[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        payload = {
            "id": "stub-1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(payload)}\n\n".encode()

    start_response("200 OK", [("Content-Type", "text/event-stream")])
    frames = [chunk({"role": "assistant"})]
    frames += [chunk({"content": piece}) for piece in pieces]
    return [*frames, chunk({}, "stop"), b"data: [DONE]\n\n"]
