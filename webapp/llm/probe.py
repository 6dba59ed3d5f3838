"""Capability probes: small real requests that show what a provider actually does.

One probe per capability column. Each says `True` (the feature worked as specified),
`False` (the provider refused it with an HTTP 4xx naming it, or ignored it — say a text
reply where a tool call was asked for) or `None` (could not tell: a timeout, a 5xx, a
connection error, a refusal that names something else). The probes go around the
capability preflight on purpose: they test the very flags the preflight trusts.

The five run at once, one thread each (the SDK client is thread-safe), each with a time
limit and a small max_tokens.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Any

import openai

from webapp.llm.errors import describe_upstream_error
from webapp.llm.network import Cancellation
from webapp.llm.run import sdk_arguments
from webapp.llm.secrets import mask_secrets
from webapp.llm.specs import ModelSpec
from webapp.llm.sse import stream_chunks

# The capability columns, in the order they are reported.
CAPABILITY_COLUMNS = (
    "supports_streaming",
    "supports_tool_calling",
    "supports_response_format_json_object",
    "supports_response_format_json_schema",
    "supports_parallel_tool_calls",
)
DEFAULT_TIME_LIMIT = 20.0
PROBE_MAX_TOKENS = 64
EVIDENCE_CHARS = 120


@dataclass(frozen=True)
class Observation:
    """What one probe saw: `observed` True / False / None, and why in one sentence.

    `outcome` is "worked", "refused", "ignored" or "unknown"."""

    column: str
    observed: bool | None
    outcome: str
    evidence: str


@dataclass(frozen=True)
class ProbeReport:
    """The five observations, in CAPABILITY_COLUMNS order."""

    observations: tuple[Observation, ...]

    @property
    def observed(self) -> dict[str, bool | None]:
        return {o.column: o.observed for o in self.observations}

    @property
    def evidence(self) -> dict[str, str]:
        return {o.column: o.evidence for o in self.observations}

    def as_json(self) -> dict[str, Any]:
        """The five columns with true/false/null, plus `evidence` (a sentence per column)."""
        return {**self.observed, "evidence": self.evidence}


def _worked(column: str, evidence: str) -> Observation:
    return Observation(column, True, "worked", evidence)


def _ignored(column: str, evidence: str) -> Observation:
    return Observation(column, False, "ignored", f"ignored: {evidence}")


def _unknown(column: str, evidence: str) -> Observation:
    return Observation(column, None, "unknown", f"could not tell: {evidence}")


def _clip(text: str | None) -> str:
    """A provider's text on one line, cut to EVIDENCE_CHARS."""
    text = " ".join((text or "").split())
    if len(text) > EVIDENCE_CHARS:
        text = text[: EVIDENCE_CHARS - 1] + "…"
    return text


def _quote(text: str | None) -> str:
    return f'"{_clip(text)}"'


# --- the requests ---------------------------------------------------------------------------

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_local_time",
        "description": "The current local time in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}


def _ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def probe_requests(model: str) -> dict[str, dict[str, Any]]:
    """The request each probe sends (the JSON body), by column."""
    base = {"model": model, "max_tokens": PROBE_MAX_TOKENS}
    return {
        "supports_streaming": {
            **base,
            "messages": _ask("Count from 1 to 20, separated by spaces."),
            "stream": True,
        },
        "supports_tool_calling": {
            **base,
            "messages": _ask("What is the weather in Paris? Use the get_weather tool."),
            "tools": [WEATHER_TOOL],
        },
        "supports_response_format_json_object": {
            **base,
            "messages": _ask('Answer in JSON: an object with the key "capital" for France.'),
            "response_format": {"type": "json_object"},
        },
        "supports_response_format_json_schema": {
            **base,
            "messages": _ask("Name the capital of France and its population."),
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "city", "strict": True, "schema": CITY_SCHEMA},
            },
        },
        "supports_parallel_tool_calls": {
            **base,
            "messages": _ask(
                "What are the weather and the local time in Paris? Call get_weather and "
                "get_local_time together, in one turn."
            ),
            "tools": [WEATHER_TOOL, TIME_TOOL],
            "parallel_tool_calls": True,
        },
    }


# Words that show a refusal is about the feature probed (in the error's param or message).
FEATURE_WORDS = {
    "supports_streaming": ("stream",),
    "supports_tool_calling": ("tool", "function"),
    "supports_response_format_json_object": ("response_format", "json_object", "json"),
    "supports_response_format_json_schema": ("response_format", "json_schema", "schema"),
    # Without tools there are no parallel tool calls either.
    "supports_parallel_tool_calls": ("parallel", "tool", "function"),
}


# --- judging the answers --------------------------------------------------------------------


def schema_errors(value: Any, schema: Mapping[str, Any], path: str = "$") -> list[str]:
    """Where `value` breaks `schema` (type, properties, required, additionalProperties,
    items, enum) — the subset the probe's schema uses; [] when it validates."""
    errors: list[str] = []
    kind = schema.get("type")
    checks: dict[str, Callable[[Any], bool]] = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    if isinstance(kind, str) and kind in checks and not checks[kind](value):
        return [f"{path} is not a{'n' if kind[0] in 'aeiou' else ''} {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path} is not one of {schema['enum']}")
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        errors += [
            f"{path}.{name} is missing" for name in schema.get("required", ()) if name not in value
        ]
        if schema.get("additionalProperties") is False:
            errors += [f"{path}.{name} is not allowed" for name in value if name not in properties]
        for name, item in value.items():
            if name in properties:
                errors += schema_errors(item, properties[name], f"{path}.{name}")
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{path}[{index}]")
    return errors


def _parse_json(text: str | None) -> tuple[Any, str | None]:
    try:
        return json.loads(text or ""), None
    except ValueError:
        return None, f"the content is not JSON: {_quote(text)}"


def _judge_json_object(column: str, message: Any) -> Observation:
    value, problem = _parse_json(message.content)
    if problem:
        return _ignored(column, problem)
    if not isinstance(value, dict):
        return _ignored(column, f"the content is JSON but not an object: {_quote(message.content)}")
    return _worked(column, f"the reply parsed as a JSON object: {_clip(message.content)}")


def _judge_json_schema(column: str, message: Any) -> Observation:
    value, problem = _parse_json(message.content)
    if problem:
        return _ignored(column, problem)
    errors = schema_errors(value, CITY_SCHEMA)
    if errors:
        return _ignored(
            column,
            f"the JSON does not match the schema ({'; '.join(errors[:3])}): "
            f"{_quote(message.content)}",
        )
    return _worked(column, f"the reply validated against the schema: {_clip(message.content)}")


def _call_problem(call: Any, offered: Iterable[str]) -> str | None:
    function = getattr(call, "function", None)
    name = getattr(function, "name", None)
    if name not in offered:
        return f"it called {name!r}, which was not offered"
    arguments, problem = _parse_json(getattr(function, "arguments", None))
    if problem or not isinstance(arguments, dict):
        return f"the arguments of {name} are not a JSON object: {_quote(function.arguments)}"
    if "city" not in arguments:
        return f"the arguments of {name} lack the required city: {_quote(function.arguments)}"
    return None


def _plain_text(column: str, message: Any) -> Observation:
    return _ignored(
        column, f"it answered with text instead of a tool call: {_quote(message.content)}"
    )


def _judge_tool_call(column: str, message: Any) -> Observation:
    calls = message.tool_calls or []
    if not calls:
        return _plain_text(column, message)
    problem = _call_problem(calls[0], ("get_weather",))
    if problem:
        return _ignored(column, problem)
    arguments = _clip(calls[0].function.arguments)
    return _worked(column, f"it called get_weather with valid JSON arguments {arguments}")


def _judge_parallel(column: str, message: Any) -> Observation:
    calls = message.tool_calls or []
    if not calls:
        return _plain_text(column, message)
    if len(calls) < 2:
        return _ignored(column, f"it made one tool call ({calls[0].function.name}), not two")
    for call in calls:
        problem = _call_problem(call, ("get_weather", "get_local_time"))
        if problem:
            return _ignored(column, problem)
    names = ", ".join(call.function.name for call in calls)
    return _worked(column, f"it made {len(calls)} tool calls in one turn ({names})")


_JUDGES: dict[str, Callable[[str, Any], Observation]] = {
    "supports_tool_calling": _judge_tool_call,
    "supports_response_format_json_object": _judge_json_object,
    "supports_response_format_json_schema": _judge_json_schema,
    "supports_parallel_tool_calls": _judge_parallel,
}


# --- running --------------------------------------------------------------------------------


def _failed(column: str, error: BaseException, secrets: list[str]) -> Observation:
    reason = describe_upstream_error(error, secrets)
    if isinstance(error, openai.APIStatusError) and 400 <= error.status_code < 500:
        if _names_feature(column, error):
            return Observation(column, False, "refused", f"refused: {reason}")
        return _unknown(column, f"{reason} (the refusal does not name this feature)")
    return _unknown(column, reason)


def _names_feature(column: str, error: openai.APIStatusError) -> bool:
    body = error.body if isinstance(error.body, Mapping) else {}
    text = f"{body.get('param') or ''} {body.get('message') or ''} {error.message}".lower()
    return any(word in text for word in FEATURE_WORDS[column])


def _probe_stream(
    column: str, client: Any, request: dict[str, Any], time_limit: float, secrets: list[str]
) -> Observation:
    deadline = time.monotonic() + time_limit
    pieces: list[str] = []
    finish_reason = None
    try:
        arguments = sdk_arguments(request)
        with stream_chunks(client, arguments, Cancellation(), timeout=time_limit) as chunks:
            for chunk in chunks:
                for choice in chunk.get("choices") or ():
                    finish_reason = choice.get("finish_reason") or finish_reason
                    text = _delta_text(choice.get("delta"))
                    if text:
                        pieces.append(text)
                if time.monotonic() > deadline:
                    return _unknown(column, f"the stream did not end within {time_limit:g} s")
    except Exception as error:  # the edge: whatever the provider or transport did
        return _failed(column, error, secrets)
    if finish_reason is None:
        return _unknown(column, "the stream ended before the reply was complete")
    if len(pieces) < 2:
        return _ignored(
            column,
            f"the reply came in {len(pieces)} piece(s), not streamed: {_quote(''.join(pieces))}",
        )
    return _worked(column, f"the reply streamed in {len(pieces)} chunks")


def _delta_text(delta: Any) -> str:
    """A chunk's text: its content, or the reasoning some providers stream before it (a
    reasoning model may spend the whole small max_tokens thinking)."""
    if not isinstance(delta, Mapping):
        return ""
    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
    return delta.get("content") or (reasoning if isinstance(reasoning, str) else "")


def _probe_once(
    column: str, client: Any, request: dict[str, Any], time_limit: float, secrets: list[str]
) -> Observation:
    try:
        response = client.chat.completions.create(**sdk_arguments(request), timeout=time_limit)
        choice = response.choices[0]
    except Exception as error:  # the edge: whatever the provider or transport did
        return _failed(column, error, secrets)
    observation = _JUDGES[column](column, choice.message)
    if observation.observed is False and choice.finish_reason == "length":
        # Cut short (a reasoning model thinking, say): not evidence that it ignored anything.
        return _unknown(
            column,
            f"the reply stopped at the {PROBE_MAX_TOKENS}-token limit before it was complete",
        )
    return observation


def probe_capabilities(
    llm_model: ModelSpec, client: Any, *, time_limit: float = DEFAULT_TIME_LIMIT
) -> ProbeReport:
    """Run the five probes at once against `client` (an `openai.OpenAI`-compatible object);
    each gets `time_limit` seconds, after which it counts as "could not tell"."""
    secrets = llm_model.provider.secrets
    requests = probe_requests(llm_model.model)
    pool = ThreadPoolExecutor(max_workers=len(requests), thread_name_prefix="probe")
    try:
        futures = {
            column: pool.submit(
                _probe_stream if request.get("stream") else _probe_once,
                column,
                client,
                request,
                time_limit,
                secrets,
            )
            for column, request in requests.items()
        }
        # A little grace over the per-request limit: the SDK's own timeout fires first.
        wait(futures.values(), timeout=time_limit + 2)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    observations = tuple(
        futures[column].result()
        if futures[column].done()
        else _unknown(column, f"no answer within {time_limit:g} s")
        for column in CAPABILITY_COLUMNS
    )
    # The evidence quotes the provider: whatever it echoes of its secrets is masked.
    return ProbeReport(
        tuple(replace(o, evidence=mask_secrets(o.evidence, secrets)) for o in observations)
    )
