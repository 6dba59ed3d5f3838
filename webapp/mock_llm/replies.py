"""What the mock OpenAI-compatible API answers: pure functions, no Flask.

The views (`webapp.mock_llm.views`) turn these into HTTP; tests call them directly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GREETING = "Hello! (mock) How can I help you today?"
BRIEF_GREETING_REPLY = "Hello! (mock) Nice to meet you."
DEFAULT_PROMPT_CHARS = 240
CHARS_PER_TOKEN = 4
STREAM_PIECE_CHARS = 18
MAX_FAULT_SECONDS = 30.0

_TRANSLATION_ENGINE = re.compile(r"translation (repair )?engine", re.IGNORECASE)
_TEXTAREA = re.compile(r"<textarea\b[^>]*>(.*?)</textarea>", re.IGNORECASE | re.DOTALL)
_BRIEF_GREETING = re.compile(r"brief greeting", re.IGNORECASE)
# ASCII digits only, and few of them: str.isdigit accepts "²", which int() rejects.
_STATUS = re.compile(r"[0-9]{3}")
_PIECE_COUNT = re.compile(r"[0-9]{1,6}")


class InvalidCompletionRequest(ValueError):
    """The request body breaks the API contract; the message is what the client is told."""


class InvalidFaultHeader(ValueError):
    """The X-Mock-Fault header cannot be parsed; the message names the problem."""


@dataclass(frozen=True)
class CompletionRequest:
    """The parts of a chat completion request body that the mock uses."""

    model: str
    messages: Sequence[Any]
    max_tokens: int | None
    stream: bool
    include_usage: bool


@dataclass(frozen=True)
class Faults:
    """Faults a client asked for with the X-Mock-Fault header (all off by default)."""

    status: int | None = None
    delay: float = 0.0
    chunk_delay: float | None = None
    cut: int | None = None
    error: int | None = None


def parse_completion_request(body: object) -> CompletionRequest:
    """Validate a decoded JSON body; raise InvalidCompletionRequest with the client message."""
    if not isinstance(body, Mapping):
        raise InvalidCompletionRequest("invalid JSON body")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidCompletionRequest("model is required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidCompletionRequest("messages must be a non-empty array")
    max_tokens = body.get("max_tokens")
    # bool is an int subclass; `true` is not a token count.
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens <= 0:
        max_tokens = None
    stream_options = body.get("stream_options")
    include_usage = isinstance(stream_options, Mapping) and stream_options.get("include_usage")
    return CompletionRequest(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        stream=body.get("stream") is True,
        include_usage=include_usage is True,
    )


def content_text(content: object) -> str:
    """A message's content as text: a string as is, the text parts of a list joined, else ""."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        ]
        return "\n".join(texts)
    return ""


def last_content(messages: Sequence[Any], role: str) -> str:
    """Text of the last message with this role, "" when there is none."""
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == role:
            return content_text(message.get("content"))
    return ""


def reply_text(request: CompletionRequest, tag: str) -> str:
    """The assistant reply, ending in `[#<tag>]`, cut to max_tokens × 4 characters."""
    text = f"{reply_body(request.model, request.messages)} [#{tag}]"
    if request.max_tokens is not None:
        return text[: request.max_tokens * CHARS_PER_TOKEN]
    return text


def reply_body(model: str, messages: Sequence[Any]) -> str:
    """The reply before its tag, chosen from the last user and system messages."""
    prompt = last_content(messages, "user")
    system = last_content(messages, "system")
    textarea = _TEXTAREA.search(prompt)
    if textarea and _TRANSLATION_ENGINE.search(system):
        return f"<textarea>{textarea.group(1)}</textarea>"
    if not prompt.strip():
        return GREETING
    if _BRIEF_GREETING.search(prompt):
        return BRIEF_GREETING_REPLY
    collapsed = " ".join(prompt.split())
    return f"Mock response (model={model}): {collapsed[:DEFAULT_PROMPT_CHARS]}"


def usage(messages: Sequence[Any], reply: str) -> dict[str, int]:
    """Token counts at four characters a token, rounded up."""
    prompt_chars = sum(
        len(content_text(message.get("content")))
        for message in messages
        if isinstance(message, Mapping)
    )
    prompt_tokens = math.ceil(prompt_chars / CHARS_PER_TOKEN)
    completion_tokens = math.ceil(len(reply) / CHARS_PER_TOKEN)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def stream_pieces(text: str) -> list[str]:
    """The reply split into the content deltas of a stream."""
    return [text[i : i + STREAM_PIECE_CHARS] for i in range(0, len(text), STREAM_PIECE_CHARS)]


def parse_faults(header: str | None) -> Faults:
    """Parse `name=value; name=value` (status, delay, chunk_delay, cut, error).

    Raises InvalidFaultHeader naming the first problem found.
    """
    values: dict[str, Any] = {}
    for item in (header or "").split(";"):
        if not item.strip():
            continue
        name, sep, raw = (part.strip() for part in item.partition("="))
        if not sep:
            raise InvalidFaultHeader(f"expected name=value, got {item.strip()!r}")
        if name not in _FAULT_PARSERS:
            raise InvalidFaultHeader(
                f"unknown fault {name!r} (known: {', '.join(sorted(_FAULT_PARSERS))})"
            )
        if name in values:
            raise InvalidFaultHeader(f"fault {name!r} given twice")
        values[name] = _FAULT_PARSERS[name](name, raw)
    if "cut" in values and "error" in values:
        raise InvalidFaultHeader("cut and error cannot be combined: a stream ends only once")
    return Faults(**values)


def _parse_status(name: str, raw: str) -> int:
    if not _STATUS.fullmatch(raw) or not 400 <= int(raw) <= 599:
        raise InvalidFaultHeader(f"{name} must be an HTTP error status 400-599, got {raw!r}")
    return int(raw)


def _parse_seconds(name: str, raw: str) -> float:
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    # NaN fails both comparisons, so "nan" and non-numbers land here too.
    if not 0 <= seconds <= MAX_FAULT_SECONDS:
        raise InvalidFaultHeader(
            f"{name} must be a number of seconds from 0 to {MAX_FAULT_SECONDS:g}, got {raw!r}"
        )
    return seconds


def _parse_piece_count(name: str, raw: str) -> int:
    if not _PIECE_COUNT.fullmatch(raw):
        raise InvalidFaultHeader(
            f"{name} must be a whole number of content pieces (up to 6 digits), got {raw!r}"
        )
    return int(raw)


_FAULT_PARSERS = {
    "status": _parse_status,
    "delay": _parse_seconds,
    "chunk_delay": _parse_seconds,
    "cut": _parse_piece_count,
    "error": _parse_piece_count,
}


_FAULT_ERROR_KINDS = {
    400: ("invalid_request_error", None),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("not_found_error", None),
    409: ("conflict_error", None),
    422: ("invalid_request_error", None),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


def fault_error_body(status: int) -> dict[str, Any]:
    """The OpenAI-style error body for an injected HTTP status."""
    default = ("server_error", None) if status >= 500 else ("invalid_request_error", None)
    error_type, code = _FAULT_ERROR_KINDS.get(status, default)
    return {"error": {"message": f"mock fault: HTTP {status}", "type": error_type, "code": code}}


@dataclass(frozen=True)
class Completion:
    """One mock answer, from which the JSON body and every stream chunk are built."""

    id: str
    created: int
    model: str
    content: str
    usage: dict[str, int]

    def body(self) -> dict[str, Any]:
        """The non-streaming `chat.completion` body."""
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.content},
                    "finish_reason": "stop",
                }
            ],
            "usage": self.usage,
        }

    def chunk(
        self,
        delta: dict[str, str],
        finish_reason: str | None = None,
        usage: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """One `chat.completion.chunk` of the stream; `usage` only when given."""
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
        if usage is not None:
            chunk["usage"] = usage
        return chunk


def build_completion(
    request: CompletionRequest, completion_id: str, created: int, tag: str
) -> Completion:
    """The answer to a valid request; the random parts (id, tag) come from the caller."""
    content = reply_text(request, tag)
    return Completion(
        id=completion_id,
        created=created,
        model=request.model,
        content=content,
        usage=usage(request.messages, content),
    )
