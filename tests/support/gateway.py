"""Helpers for the gateway tests: app keys, the official SDK pointed at /v1, and stub
providers that stream what a test scripts (or stall, to watch a disconnect reach them)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import openai

from tests.support.app import LiveServer
from webapp.services.app_keys import create_key


def app_key(name: str = "app", **options: Any) -> str:
    """A new app key's secret (model_keys, expires_days, rpm, tpm as create_key takes them)."""
    created = create_key(name, **options)
    assert created.secret is not None, created.errors
    return created.secret


def sdk(server: LiveServer, secret: str | None) -> openai.OpenAI:
    """The official SDK on the gateway, with no retries (a test sees every answer)."""
    return openai.OpenAI(
        base_url=f"{server.url}/v1", api_key=secret or "none", max_retries=0, timeout=20
    )


def user_says(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def chunk(content: str | None = None, finish: str | None = None, **extra: Any) -> str:
    """One `chat.completion.chunk` line as a provider sends it."""
    delta = {} if content is None else {"content": content}
    payload = {
        "id": "stub-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "stub-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return f"data: {json.dumps(payload)}\n\n"


class ScriptedUpstream:
    """A provider (WSGI) that streams `pieces` then a final chunk with `usage` (when given)
    and [DONE]; a non-streamed request gets the pieces joined. Records every body."""

    def __init__(self, pieces: Iterable[str], usage: dict[str, int] | None = None) -> None:
        self.pieces = list(pieces)
        self.usage = usage
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
        self.bodies.append(body)
        if body.get("stream"):
            start_response("200 OK", [("Content-Type", "text/event-stream")])
            lines = [chunk(piece) for piece in self.pieces]
            extra = {"usage": self.usage} if self.usage else {}
            lines += [chunk(None, "stop", **extra), "data: [DONE]\n\n"]
            return [line.encode() for line in lines]
        reply: dict[str, Any] = {
            "id": "stub-1",
            "object": "chat.completion",
            "created": 0,
            "model": "stub-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(self.pieces)},
                    "finish_reason": "stop",
                }
            ],
        }
        if self.usage:
            reply["usage"] = self.usage
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(reply).encode()]


def stalled_stream() -> bytes:
    """A stream's head and first chunk, after which the provider goes silent (for
    `SilentUpstream(first_reply=…)`)."""
    head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
    return (head + chunk("first")).encode()
