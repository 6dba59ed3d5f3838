"""Sending a prepared chat through the official `openai` SDK: at once, or streamed.

Nothing here raises for what a provider or the network does: every failure becomes a
`Result` (LLM_REQUEST_FAILED, with the reason scrubbed of the provider's secrets).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from webapp.llm import results as codes
from webapp.llm.errors import describe_upstream_error
from webapp.llm.network import Cancellation
from webapp.llm.prepare import PreparedChat, prepare_chat
from webapp.llm.results import Result
from webapp.llm.secrets import StreamScrubber, mask_secrets
from webapp.llm.specs import ModelSpec
from webapp.llm.sse import stream_chunks

log = logging.getLogger(__name__)

# The connection test: the smallest request a chat model answers.
PING_REQUEST: dict[str, Any] = {
    "messages": [{"role": "user", "content": "ping"}],
    "max_tokens": 1,
    "temperature": 0,
}


@dataclass(frozen=True)
class StreamEvent:
    """`delta` (a piece of the reply), then exactly one `done` or `error` carrying a Result."""

    type: Literal["delta", "done", "error"]
    content: str = ""
    result: Result | None = None


class ChatStream:
    """The events of one reply. Iterate it in one thread; `close()` there when the consumer
    goes away (it closes the upstream response); `cancel()` from any other thread cuts the
    provider call short, even while the provider is silent — the iteration then ends with
    an `error` event."""

    def __init__(
        self, events: Iterator[StreamEvent], cancellation: Cancellation | None = None
    ) -> None:
        self._events = events
        self.cancellation = cancellation or Cancellation()

    @classmethod
    def failed(cls, result: Result) -> ChatStream:
        """A reply that ended before anything was sent."""
        return cls(iter([StreamEvent("error", result=result)]))

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> StreamEvent:
        return next(self._events)

    def close(self) -> None:
        close = getattr(self._events, "close", None)
        if close is not None:
            close()

    def cancel(self) -> None:
        self.cancellation.cancel()


def sdk_arguments(request: Mapping[str, Any]) -> dict[str, Any]:
    """The SDK call that sends `request` (a body built here, plain JSON) as it is.

    The SDK sends what it gets in `extra_body` at the top level of the body, over what it
    built from its named parameters. Everything but `model` and `stream` travels there, so
    options it does not name (top_k, min_p …) reach the provider like those it does, and the
    SDK's transform of its named parameters is skipped: it walks every message through the
    union of message types — 0.7 ms of CPU per request for one message, 4.4 ms for ten —
    and leaves a plain JSON body unchanged. (`messages` is a required argument: its place
    is held by an empty list, which extra_body's `messages` replaces.)
    """
    arguments: dict[str, Any] = {
        "model": request["model"],
        "messages": [],
        "extra_body": {k: v for k, v in request.items() if k not in ("model", "stream")},
    }
    if "stream" in request:
        arguments["stream"] = request["stream"]
    return arguments


def _elapsed_ms(start: float, digits: int = 2) -> float:
    return round((time.perf_counter() - start) * 1000, digits)


def _usage_dict(usage: Any) -> dict[str, Any] | None:
    """Usage as a dict without its empty (None) fields, from the SDK's object or raw JSON."""
    if usage is None:
        return None
    if hasattr(usage, "model_dump"):
        return usage.model_dump(exclude_none=True)
    return _without_none(usage)


def _without_none(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    return value


def _delta_content(choice: Mapping[str, Any]) -> str:
    delta = choice.get("delta")
    return (delta.get("content") if isinstance(delta, Mapping) else None) or ""


def _success_value(prepared: PreparedChat, content: str, **details: Any) -> dict[str, Any]:
    return {
        "llm_model": prepared.llm_model,
        "preset": prepared.preset,
        "request": prepared.request,
        "assistant_message": {"role": "assistant", "content": content},
        "warnings": prepared.warnings,
        **details,
    }


def send_chat(prepared: PreparedChat, cancellation: Cancellation | None = None) -> Result:
    """Send a prepared, non-streaming request; LLM_REQUEST_FAILED on any upstream failure."""
    start = time.perf_counter()
    try:
        with (cancellation or Cancellation()).active():
            response = prepared.client.chat.completions.create(**sdk_arguments(prepared.request))
        choice = response.choices[0]
        # A provider that echoes what it was sent must not hand its key to the reader.
        content = mask_secrets(choice.message.content or "", prepared.secrets)
    except Exception as error:  # the edge: whatever the provider or transport did
        return _request_failed(prepared, error, total_ms=_elapsed_ms(start))
    return Result.ok(
        **_success_value(
            prepared,
            content,
            usage=_usage_dict(response.usage),
            finish_reason=choice.finish_reason,
            timings={"total_ms": _elapsed_ms(start)},
        )
    )


def _request_failed(prepared: PreparedChat, error: BaseException, **value: Any) -> Result:
    message = describe_upstream_error(error, prepared.secrets)
    # The request, not the model row: a stream may outlive the session that loaded the row.
    log.warning("LLM request to %s failed: %s", prepared.request["model"], message)
    return Result.failure(codes.LLM_REQUEST_FAILED, message, **value)


def stream_prepared(
    prepared: PreparedChat, cancellation: Cancellation | None = None
) -> Iterator[StreamEvent]:
    """Deltas, then one `done` or `error` event. Closing the generator closes the upstream.

    The provider's secrets are masked in the text, even one split across two chunks (the
    tail that might begin one waits for the next chunk).
    """
    start = time.perf_counter()
    first_token_ms: float | None = None
    pieces: list[str] = []
    usage: Any = None
    finish_reason: str | None = None
    scrubber = StreamScrubber(prepared.secrets)
    cancellation = cancellation or Cancellation()
    try:
        arguments = sdk_arguments(prepared.request)
        with stream_chunks(prepared.client, arguments, cancellation) as chunks:
            for chunk in chunks:
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or ():
                    finish_reason = choice.get("finish_reason") or finish_reason
                    text = scrubber.feed(_delta_content(choice))
                    if text:
                        if first_token_ms is None:
                            first_token_ms = _elapsed_ms(start)
                        pieces.append(text)
                        yield StreamEvent("delta", content=text)
    except Exception as error:  # the edge: whatever the provider or transport did
        rest = scrubber.flush()
        if rest:
            pieces.append(rest)
            yield StreamEvent("delta", content=rest)
        yield StreamEvent(
            "error",
            result=_request_failed(
                prepared,
                error,
                partial_content="".join(pieces),
                timings={"ttft_ms": first_token_ms, "total_ms": _elapsed_ms(start)},
            ),
        )
        return
    rest = scrubber.flush()
    if rest:
        first_token_ms = first_token_ms if first_token_ms is not None else _elapsed_ms(start)
        pieces.append(rest)
        yield StreamEvent("delta", content=rest)
    timings = {"ttft_ms": first_token_ms, "total_ms": _elapsed_ms(start)}
    if finish_reason is None:
        yield StreamEvent(
            "error",
            result=Result.failure(
                codes.LLM_REQUEST_FAILED,
                "the provider's stream ended before the reply was complete",
                partial_content="".join(pieces),
                timings=timings,
            ),
        )
        return
    yield StreamEvent(
        "done",
        result=Result.ok(
            **_success_value(
                prepared,
                "".join(pieces),
                usage=_usage_dict(usage),
                finish_reason=finish_reason,
                timings=timings,
            )
        ),
    )


def run_chat(llm_model: ModelSpec, **arguments: Any) -> Result:
    """Prepare (every rule) and send one non-streaming chat completion."""
    prepared = prepare_chat(llm_model, **arguments, stream=False)
    if isinstance(prepared, Result):
        return prepared
    return send_chat(prepared)


def stream_chat(llm_model: ModelSpec, **arguments: Any) -> ChatStream:
    """Like run_chat, streamed. Every check happens now, at the call; the returned stream
    then only talks to the provider (safe inside a response body)."""
    prepared = prepare_chat(llm_model, **arguments, stream=True)
    if isinstance(prepared, Result):
        return ChatStream.failed(prepared)
    cancellation = Cancellation()
    return ChatStream(stream_prepared(prepared, cancellation), cancellation)


def chat_events(llm_model: ModelSpec, **arguments: Any) -> ChatStream:
    """stream_chat for a model that streams; otherwise one ordinary request whose whole
    reply arrives as a single delta — so every model can be used where replies stream."""
    if llm_model.supports_streaming:
        return stream_chat(llm_model, **arguments)
    prepared = prepare_chat(llm_model, **arguments, stream=False)
    if isinstance(prepared, Result):
        return ChatStream.failed(prepared)
    cancellation = Cancellation()
    return ChatStream(_whole_reply(prepared, cancellation), cancellation)


def _whole_reply(prepared: PreparedChat, cancellation: Cancellation) -> Iterator[StreamEvent]:
    result = send_chat(prepared, cancellation)
    if not result.success:
        yield StreamEvent("error", result=result)
        return
    content = result.value["assistant_message"]["content"]
    if content:
        yield StreamEvent("delta", content=content)
    yield StreamEvent("done", result=result)


def ping(llm_model: ModelSpec, client: Any) -> Result:
    """One tiny completion (the connection test): `latency_ms`, or the readable reason."""
    start = time.perf_counter()
    try:
        client.chat.completions.create(model=llm_model.model, **PING_REQUEST)
    except Exception as error:  # the edge: any failure means "not working"
        message = describe_upstream_error(error, llm_model.provider.secrets)
        return Result.failure(
            codes.LLM_REQUEST_FAILED, message, latency_ms=_elapsed_ms(start, digits=1)
        )
    return Result.ok(latency_ms=_elapsed_ms(start, digits=1))
