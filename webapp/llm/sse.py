"""A provider's streamed chat completion, read from the raw response.

The SDK's `Stream` builds a pydantic object per chunk and, at `[DONE]`, closes the response
before the end of its body has arrived — which closes the connection, so every reply paid a
new TCP (and TLS) handshake. Here the raw response (`with_streaming_response`) is decoded only
as far as the engine needs — each `data:` event as a JSON value — and at `[DONE]` the rest of
the body is read (`finish_body`), so the connection goes back to the pool.

Failures read as they do through the SDK's stream: a transport failure is an
APIConnectionError (APITimeoutError for a timeout) with the transport's error as its cause,
and an event carrying `{"error": …}` is an APIError.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import httpx2
import openai

from webapp.llm.network import Cancellation, finish_body

# After [DONE] only the chunked body's terminator is left, normally already on its way; a
# provider that holds the body open longer loses the connection instead of delaying the end.
DRAIN_SECONDS = 0.5
DONE = b"[DONE]"
# What the SDK says of an error event whose error has no message.
STREAM_ERROR_TEXT = "An error occurred during streaming"


@contextlib.contextmanager
def stream_chunks(
    client: Any,
    arguments: Mapping[str, Any],
    cancellation: Cancellation,
    **options: Any,
) -> Iterator[Iterator[Any]]:
    """Send a streamed chat completion request; inside, its chunks as decoded JSON.

    The sockets the request opens (or reuses) join `cancellation`. Leaving the block before
    `[DONE]` closes the upstream response at once — a stopped reply never waits for the
    provider to finish. `options` go to the SDK call as they are (a `timeout`, say).
    """
    with contextlib.ExitStack() as stack:
        with cancellation.active():
            raw = stack.enter_context(
                client.chat.completions.with_streaming_response.create(**arguments, **options)
            )
        response = raw.http_response
        cancellation.add_response(response)
        yield _chunks(response)


def _chunks(response: httpx2.Response) -> Iterator[Any]:
    body = response.iter_bytes()
    for data in _event_data(_as_sdk_errors(body, response.request)):
        if data.startswith(DONE):
            finish_body(response, body, DRAIN_SECONDS)
            return
        chunk = json.loads(data)
        if isinstance(chunk, Mapping) and chunk.get("error"):
            raise _error_event(chunk["error"], response.request)
        yield chunk


def _as_sdk_errors(body: Iterable[bytes], request: httpx2.Request) -> Iterator[bytes]:
    """The body's bytes; a transport failure raised as the SDK's stream raises it."""
    try:
        yield from body
    except httpx2.TimeoutException as error:
        raise openai.APITimeoutError(request=request) from error
    except httpx2.RequestError as error:
        raise openai.APIConnectionError(request=request) from error


def _event_data(body: Iterable[bytes]) -> Iterator[bytes]:
    """The data of each server-sent event (its `data:` lines joined by newlines).

    Other fields (`event:`, `id:`, comments) mean nothing to a chat completion stream; an
    event is complete at the blank line after it, as the SSE format says.
    """
    buffer = b""
    data: list[bytes] = []
    for piece in body:
        buffer += piece
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            line = line.rstrip(b"\r")
            if not line:
                if data:
                    yield b"\n".join(data)
                    data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)


def _error_event(error: Any, request: httpx2.Request) -> openai.APIError:
    message = error.get("message") if isinstance(error, Mapping) else None
    if not isinstance(message, str) or not message:
        message = STREAM_ERROR_TEXT
    return openai.APIError(message, request, body=error)
