"""Relaying a provider's OpenAI-compatible answer to an API client, close to byte for byte.

The gateway's hot path: the SDK's raw response API (`with_raw_response`,
`with_streaming_response`) keeps the SDK's request building, retries and errors but skips
building a pydantic object per chunk. A streamed line is passed on as it came unless it must
change: a provider secret may be in it (the provider has secrets: its text is checked, a
secret split across two chunks included), or it carries usage the client did not ask for.
The `model` field is the provider's own model id, as the provider sent it.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from webapp.llm.budget import default_estimator
from webapp.llm.network import Cancellation
from webapp.llm.prepare import PreparedChat
from webapp.llm.pump import Pump
from webapp.llm.run import sdk_arguments
from webapp.llm.secrets import StreamScrubber, mask_secrets

DONE_FRAME = b"data: [DONE]\n\n"
# An SSE comment: ignored by clients, but writing it is how a client that left is noticed.
HEARTBEAT_FRAME = b": ping\n\n"
CLIENT_LEFT = "the client went away"
ENDED_EARLY = "the provider's stream ended before the reply was complete"
# Most providers repeat `"usage": null` in every chunk; only a real usage needs a look.
_NO_USAGE = re.compile(r'"usage"\s*:\s*null')


@dataclass(frozen=True)
class RawCompletion:
    """A provider's non-streamed answer: its JSON text (secrets masked) and its usage."""

    body: str
    usage: Mapping[str, Any] | None
    completion_text: str


def send_raw(prepared: PreparedChat, cancellation: Cancellation) -> RawCompletion:
    """Send a prepared non-streaming request; raises what the SDK raises on failure."""
    create = prepared.client.chat.completions.with_raw_response.create
    with cancellation.active():
        response = create(**sdk_arguments(prepared.request))
    body = mask_secrets(response.text, prepared.secrets)
    parsed = json.loads(body)
    choices = parsed.get("choices") or [{}]
    message = choices[0].get("message") or {}
    return RawCompletion(body, parsed.get("usage"), message.get("content") or "")


def open_stream(prepared: PreparedChat, cancellation: Cancellation) -> Any:
    """Send a prepared streaming request and return the open raw response (its status was
    a success: an error status raises here, before anything reached the client)."""
    stack = contextlib.ExitStack()
    with cancellation.active():
        response = stack.enter_context(
            prepared.client.chat.completions.with_streaming_response.create(
                **sdk_arguments(prepared.request)
            )
        )
    cancellation.add_response(response.http_response)
    return _Opened(response, stack)


@dataclass
class _Opened:
    response: Any
    stack: contextlib.ExitStack

    def lines(self) -> Iterator[str]:
        """Every line of the body, to its very end (so the connection can be reused)."""
        with self.stack:
            yield from self.response.iter_lines()


@dataclass
class RelayOutcome:
    """How a relayed stream went, for usage and limits; final once `on_end` is called."""

    usage: Mapping[str, Any] | None = None
    ttft_ms: float | None = None
    total_ms: float = 0.0
    # None: completed. Otherwise why it did not (the client left, the provider failed).
    error: str | None = None
    disconnected: bool = False
    completion_text: str = ""


@dataclass
class LineFilter:
    """Turns the provider's SSE lines into the frames the client gets."""

    secrets: list[str]
    include_usage: bool
    done: bool = False
    error: str | None = None
    usage: Mapping[str, Any] | None = None
    payloads: list[str] = field(default_factory=list)
    _scrubbers: dict[int, StreamScrubber] = field(default_factory=dict)

    def frame(self, line: str) -> bytes | None:
        # Blank separators, comments, `event:` and `id:` fields: we write our own framing.
        if not line.startswith("data:") or self.done:
            return None
        data = line[5:].lstrip()
        if data == "[DONE]":
            self.done = True
            return None
        if self.secrets or '"error"' in data or ('"usage"' in data and not _NO_USAGE.search(data)):
            data = self._rewrite(data)
            if not data:
                return None
        self.payloads.append(data)
        return b"data: " + data.encode() + b"\n\n"

    def _rewrite(self, data: str) -> str:
        """The line as the client must see it ("" to drop it); re-serialized only when it
        changed."""
        try:
            chunk = json.loads(data)
        except ValueError:
            return mask_secrets(data, self.secrets)
        if not isinstance(chunk, dict):
            return mask_secrets(data, self.secrets)
        changed = False
        if isinstance(chunk.get("error"), Mapping):
            self.error = str(chunk["error"].get("message") or "the provider reported an error")
        if chunk.get("usage"):
            self.usage = chunk["usage"]
            if not self.include_usage:
                if not chunk.get("choices"):
                    return ""
                del chunk["usage"]
                changed = True
        if self.secrets:
            changed = self._scrub_contents(chunk) or changed
        text = json.dumps(chunk, ensure_ascii=False) if changed else data
        return mask_secrets(text, self.secrets)

    def _scrub_contents(self, chunk: dict[str, Any]) -> bool:
        """Mask secrets in each choice's content, holding back a tail that may begin one
        until the next chunk (or the choice's finish) decides it."""
        changed = False
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            content = delta.get("content") if isinstance(delta.get("content"), str) else ""
            scrubber = self._scrubbers.setdefault(
                choice.get("index", 0), StreamScrubber(self.secrets)
            )
            out = scrubber.feed(content)
            if choice.get("finish_reason"):
                out += scrubber.flush()
            if out != content:
                choice["delta"] = {**delta, "content": out}
                changed = True
        return changed

    def completion_text(self) -> str:
        """The reply's text, read back from the frames (only needed without usage)."""
        pieces = []
        for data in self.payloads:
            with contextlib.suppress(ValueError, AttributeError, TypeError):
                for choice in json.loads(data).get("choices") or ():
                    pieces.append((choice.get("delta") or {}).get("content") or "")
        return "".join(pieces)


def error_frame(message: str) -> bytes:
    """An in-band error event: the official SDK raises it instead of ending quietly."""
    body = {"error": {"message": message, "type": "upstream_error", "code": "upstream_error"}}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class StreamRelay:
    """The client's SSE frames, as the provider's lines arrive (read on a pump thread, so a
    heartbeat goes out while the provider is silent). `close()` — the client left, even
    before the body started — cancels the provider call at once. `on_end` gets the outcome
    exactly once."""

    def __init__(
        self,
        opened: Any,
        prepared: PreparedChat,
        cancellation: Cancellation,
        *,
        include_usage: bool,
        heartbeat_seconds: float,
        on_end: Callable[[RelayOutcome], None],
        started: float,
    ) -> None:
        self._opened = opened
        self._cancellation = cancellation
        self._heartbeat_seconds = heartbeat_seconds
        self._on_end = on_end
        self._started = started
        self._lines = LineFilter(list(prepared.secrets), include_usage)
        self._outcome = RelayOutcome()
        self._running = False
        self._frames = self._generate()

    def __iter__(self) -> Iterator[bytes]:
        return self._frames

    def close(self) -> None:
        if self._running:
            self._frames.close()
            return
        # Never started: no pump owns the response, so it is closed here.
        self._frames.close()
        self._opened.stack.close()
        self._outcome.disconnected = True
        self._outcome.error = CLIENT_LEFT
        self._finish()

    def _generate(self) -> Iterator[bytes]:
        self._running = True
        outcome, lines = self._outcome, self._lines
        pump = Pump(self._opened.lines())
        try:
            ended = False
            while not ended:
                items = pump.batch(timeout=self._heartbeat_seconds)
                if not items:
                    yield HEARTBEAT_FRAME
                    continue
                frames, ended = self._frames_of(items)
                if frames:
                    if outcome.ttft_ms is None:
                        outcome.ttft_ms = _ms_since(self._started)
                    yield frames
            end = self._end_frame()
            if end:
                yield end
        except GeneratorExit:
            outcome.disconnected = True
            outcome.error = CLIENT_LEFT
            raise
        finally:
            if not lines.done:
                self._cancellation.cancel()
            self._finish()

    def _frames_of(self, items: list[Any]) -> tuple[bytes, bool]:
        """The frames for a batch of the pump's items, and whether the upstream ended."""
        frames = []
        for item in items:
            if item is Pump.END:
                return b"".join(frames), True
            if isinstance(item, Exception) and self._lines.done:
                return b"".join(frames), True  # the reply was complete: only the drain failed
            if isinstance(item, Exception):
                message = f"the provider's stream failed: {item}"
                self._outcome.error = mask_secrets(message, self._lines.secrets)
                frames.append(error_frame(self._outcome.error))
                return b"".join(frames), True
            frame = self._lines.frame(item)
            if frame is not None:
                frames.append(frame)
        return b"".join(frames), False

    def _end_frame(self) -> bytes:
        """[DONE] after a complete stream; an error event when it was not (the provider's
        own error event, or ours for a failed read, was already passed on)."""
        if self._outcome.error is not None:
            return b""
        if self._lines.error is not None:
            self._outcome.error = self._lines.error
            return b""
        if not self._lines.done:
            self._outcome.error = ENDED_EARLY
            return error_frame(ENDED_EARLY)
        return DONE_FRAME

    def _finish(self) -> None:
        outcome, lines = self._outcome, self._lines
        outcome.usage = lines.usage
        if lines.usage is None:
            outcome.completion_text = lines.completion_text()
        outcome.total_ms = _ms_since(self._started)
        self._on_end(outcome)


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


def estimate_tokens(text: str, model_hint: str) -> int:
    """Tokens of a reply's text by the engine's estimator (when the provider sent no usage)."""
    return default_estimator().estimate(text, model_hint)
