"""What the mock OpenAI-compatible API answers: pure functions, no Flask.

The views (`webapp.mock_llm.views`) turn these into HTTP; tests call them directly.
"""

from __future__ import annotations

import json
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
    # The function tools offered (each {"name", "parameters"}), and the reply's shape.
    tools: Sequence[Mapping[str, Any]] = ()
    parallel_tool_calls: bool = False
    response_format: Mapping[str, Any] | None = None


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
    response_format = body.get("response_format")
    return CompletionRequest(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        stream=body.get("stream") is True,
        include_usage=include_usage is True,
        tools=_offered_tools(body),
        parallel_tool_calls=body.get("parallel_tool_calls") is True,
        response_format=response_format if isinstance(response_format, Mapping) else None,
    )


def _offered_tools(body: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    """The functions of `tools`, unless tool_choice is "none" (then no tool is called)."""
    tools = body.get("tools")
    if not isinstance(tools, list) or body.get("tool_choice") == "none":
        return ()
    functions = (tool.get("function") for tool in tools if isinstance(tool, Mapping))
    return tuple(
        function
        for function in functions
        if isinstance(function, Mapping) and isinstance(function.get("name"), str)
    )


# Mock model ids that lack features, as real providers do: asked for one, they answer 400
# naming it. Every other model id can do everything.
MODEL_LIMITS: dict[str, frozenset[str]] = {
    "mock-basic": frozenset({"tools", "json_object", "json_schema"}),
    "mock-lite": frozenset({"stream", "parallel_tool_calls", "json_schema"}),
}
_FEATURE_REFUSALS = {
    "stream": ("streaming is not supported by this model", "stream"),
    "tools": ("tools are not supported by this model", "tools"),
    "parallel_tool_calls": (
        "parallel_tool_calls is not supported by this model",
        "parallel_tool_calls",
    ),
    "json_object": (
        "response_format json_object is not supported by this model",
        "response_format",
    ),
    "json_schema": (
        "response_format json_schema is not supported by this model",
        "response_format",
    ),
}


def requested_features(request: CompletionRequest) -> list[str]:
    """The optional features a request asks for, in the order a provider checks them."""
    features = []
    if request.stream:
        features.append("stream")
    if request.tools:
        features.append("tools")
    if request.tools and request.parallel_tool_calls:
        features.append("parallel_tool_calls")
    kind = (request.response_format or {}).get("type")
    if kind in ("json_object", "json_schema"):
        features.append(kind)
    return features


def unsupported_feature_error(request: CompletionRequest) -> dict[str, Any] | None:
    """The 400 error body for the first feature this mock model lacks, or None."""
    missing = MODEL_LIMITS.get(request.model, frozenset())
    for feature in requested_features(request):
        if feature in missing:
            message, param = _FEATURE_REFUSALS[feature]
            return {"error": {"message": message, "type": "invalid_request_error", "param": param}}
    return None


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


def sample_for_schema(schema: object) -> Any:
    """A value satisfying a JSON schema's basics: const, enum, type, an object's required
    properties (each sampled in turn), an array's minItems."""
    if not isinstance(schema, Mapping):
        return "mock"
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        required = schema.get("required")
        required = required if isinstance(required, list) else []
        return {name: sample_for_schema(properties.get(name)) for name in required}
    if kind == "array":
        count = schema.get("minItems")
        count = count if isinstance(count, int) and not isinstance(count, bool) else 0
        return [sample_for_schema(schema.get("items")) for _ in range(max(count, 0))]
    return _SAMPLES.get(kind, "mock")


_SAMPLES: dict[Any, Any] = {
    "string": "mock",
    "integer": 1,
    "number": 1,
    "boolean": True,
    "null": None,
}


def tool_calls_for(request: CompletionRequest, id_tag: str) -> list[dict[str, Any]]:
    """Calls to the first offered tool (and the second too, when parallel_tool_calls is
    true and two are offered), each with JSON arguments for its required parameters."""
    count = 2 if request.parallel_tool_calls and len(request.tools) >= 2 else 1
    return [
        {
            "id": f"call_{id_tag}{index}",
            "type": "function",
            "function": {
                "name": function["name"],
                "arguments": json.dumps(sample_for_schema(function.get("parameters") or {})),
            },
        }
        for index, function in enumerate(request.tools[:count])
    ]


def json_reply(request: CompletionRequest, tag: str) -> str | None:
    """The content of a JSON-mode reply (json_object or json_schema), else None.

    Never cut by max_tokens, so it always parses."""
    response_format = request.response_format or {}
    kind = response_format.get("type")
    if kind == "json_object":
        reply = f"{reply_body(request.model, request.messages)} [#{tag}]"
        return json.dumps({"reply": reply}, ensure_ascii=False)
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        return json.dumps(sample_for_schema(schema or {"type": "object"}), ensure_ascii=False)
    return None


@dataclass(frozen=True)
class Completion:
    """One mock answer, from which the JSON body and every stream chunk are built."""

    id: str
    created: int
    model: str
    content: str
    usage: dict[str, int]
    tool_calls: list[dict[str, Any]] | None = None

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"

    def message(self) -> dict[str, Any]:
        if self.tool_calls:
            return {"role": "assistant", "content": None, "tool_calls": self.tool_calls}
        return {"role": "assistant", "content": self.content}

    def body(self) -> dict[str, Any]:
        """The non-streaming `chat.completion` body."""
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": 0, "message": self.message(), "finish_reason": self.finish_reason}
            ],
            "usage": self.usage,
        }

    def stream_deltas(self) -> list[dict[str, Any]]:
        """The deltas after the first {role}: content pieces, or the tool calls as OpenAI
        streams them (id, type and name first, then the arguments in pieces)."""
        if not self.tool_calls:
            return [{"content": piece} for piece in stream_pieces(self.content)]
        deltas: list[dict[str, Any]] = []
        for index, call in enumerate(self.tool_calls):
            function = call["function"]
            opening = {"id": call["id"], "type": "function"}
            opening["function"] = {"name": function["name"], "arguments": ""}
            deltas.append({"tool_calls": [{"index": index, **opening}]})
            deltas.extend(
                {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                for piece in stream_pieces(function["arguments"])
            )
        return deltas

    def chunk(
        self,
        delta: dict[str, Any],
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
    """The answer to a valid request; the random parts (id, tag) come from the caller.

    Offered tools are called; a JSON response_format gets JSON; otherwise the reply text."""
    if request.tools:
        calls = tool_calls_for(request, tag)
        arguments = "".join(call["function"]["arguments"] for call in calls)
        return Completion(
            id=completion_id,
            created=created,
            model=request.model,
            content="",
            usage=usage(request.messages, arguments),
            tool_calls=calls,
        )
    content = json_reply(request, tag)
    if content is None:
        content = reply_text(request, tag)
    return Completion(
        id=completion_id,
        created=created,
        model=request.model,
        content=content,
        usage=usage(request.messages, content),
    )
