"""run_chat / stream_chat: one prompt through a model's provider (the spec's LLM::RunChat).

Every rule is checked before anything is sent — enabled gate, preset, options, messages,
capabilities, token budget — and every failure comes back as a `Result`, never an exception.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypedDict, Unpack

import openai
from openai.resources.chat.completions import Completions
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import LLMModel, LLMPreset
from webapp.services import result as codes
from webapp.services.clients import client_for, provider_secrets, scrub
from webapp.services.language import language_policy
from webapp.services.result import Result
from webapp.services.tokens import (
    PromptBudget,
    check_prompt_budget,
    default_estimator,
    estimate_prompt_tokens,
)

log = logging.getLogger(__name__)

MESSAGE_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
# Keys a caller's llm_options may not set: streaming is chosen by run_chat vs stream_chat.
CALLER_FORBIDDEN_OPTIONS = frozenset({"stream", "stream_options"})
# Keys the service owns; silently dropped from merged options.
SERVICE_OWNED_OPTIONS = frozenset({"model", "messages"})
# Parameters the SDK names; everything else travels in extra_body.
SDK_PARAMETERS = frozenset(inspect.signature(Completions.create).parameters) - {
    "self",
    "model",
    "messages",
    "stream",
    "extra_body",
    "extra_headers",
    "extra_query",
    "timeout",
}


@dataclass(frozen=True)
class PreparedChat:
    """Everything needed to send the request; no database access is needed after this."""

    llm_model: LLMModel
    preset: LLMPreset | None
    request: dict[str, Any]
    client: Any
    secrets: list[str]
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StreamEvent:
    """`delta` (a piece of the reply), then exactly one `done` or `error` carrying a Result."""

    type: Literal["delta", "done", "error"]
    content: str = ""
    result: Result | None = None


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge nested dicts key by key; any other value in `override` replaces the base's."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _string_keys(value: Any) -> Any:
    """Context may use str or enum-like keys (the spec's symbols); normalize to str."""
    if isinstance(value, Mapping):
        return {str(getattr(k, "value", k)): _string_keys(v) for k, v in value.items()}
    return value


class _Invalid(Exception):
    """Internal: input rejected before sending; carries the Result to return."""

    def __init__(self, result: Result) -> None:
        super().__init__(result.errors)
        self.result = result


def _invalid(message: str) -> _Invalid:
    return _Invalid(Result.failure(codes.INVALID_INPUT, message))


def _check_types(
    llm_model: Any, user_text: Any, history: Any, system: Any, context: Any, llm_options: Any
) -> None:
    if not isinstance(llm_model, LLMModel):
        raise _invalid("llm_model must be an LLMModel")
    for name, value in (("user_text", user_text), ("system", system)):
        if value is not None and not isinstance(value, str):
            raise _invalid(f"{name} must be a string")
    if history is not None and not isinstance(history, list | tuple):
        raise _invalid("history must be a list of messages")
    for name, value in (("context", context), ("llm_options", llm_options)):
        if value is not None and not isinstance(value, Mapping):
            raise _invalid(f"{name} must be a mapping")


def _resolve_preset(llm_model: LLMModel, preset: Any, preset_key: Any) -> LLMPreset | None:
    """Explicit preset > preset_key > the model's "default" preset, if any."""
    if preset is not None:
        if not isinstance(preset, LLMPreset) or preset.llm_model_id != llm_model.id:
            raise _invalid("preset does not belong to this model")
        return preset
    key = preset_key if preset_key is not None else "default"
    found = db.session.scalars(
        select(LLMPreset).where(
            LLMPreset.llm_model_id == llm_model.id, LLMPreset.key == str(key).strip().lower()
        )
    ).first()
    if found is None and preset_key is not None:
        raise _Invalid(
            Result.failure(
                codes.PRESET_NOT_FOUND, f"no preset with key {preset_key!r} for this model"
            )
        )
    return found


def _merge_options(
    llm_model: LLMModel, preset: LLMPreset | None, llm_options: Mapping[str, Any] | None
) -> dict[str, Any]:
    requested = dict(llm_options or {})
    forbidden = sorted(CALLER_FORBIDDEN_OPTIONS & requested.keys())
    if forbidden:
        raise _invalid(f"llm_options may not set {', '.join(forbidden)}")
    merged = dict(llm_model.llm_provider.llm_options_defaults or {})
    if preset is not None:
        merged = deep_merge(merged, preset.llm_options_overrides or {})
    merged = deep_merge(merged, requested)
    return {k: v for k, v in merged.items() if k not in SERVICE_OWNED_OPTIONS}


def _build_messages(
    system: str | None,
    language_instruction: str | None,
    history: list[Any] | tuple[Any, ...] | None,
    user_text: str | None,
) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if system is not None and system.strip():
        messages.append({"role": "system", "content": system})
    if language_instruction:
        messages.append({"role": "system", "content": language_instruction})
    for index, message in enumerate(history or ()):
        if not isinstance(message, Mapping):
            raise _invalid(f"history[{index}] must be a mapping with role and content")
        role, content = message.get("role"), message.get("content")
        if role not in MESSAGE_ROLES:
            raise _invalid(
                f"history[{index}].role must be one of {', '.join(sorted(MESSAGE_ROLES))}"
            )
        if content is not None and not isinstance(content, str | list):
            raise _invalid(f"history[{index}].content must be a string")
        messages.append(dict(message))
    if user_text is not None and user_text.strip():
        messages.append({"role": "user", "content": user_text})
    if not any(m["role"] != "system" for m in messages):
        raise _Invalid(Result.failure(codes.EMPTY_PROMPT, "there is no prompt to send"))
    return messages


def _preflight(llm_model: LLMModel, options: dict[str, Any], stream: bool) -> None:
    """Reject what the model cannot do; settle parallel_tool_calls."""
    name = llm_model.name
    tools = options.get("tools")
    response_format = options.get("response_format")
    if stream and not llm_model.supports_streaming:
        raise _invalid(f"{name} does not support streaming")
    if tools and not llm_model.supports_tool_calling:
        raise _invalid(f"{name} does not support tool calling")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, Mapping) else None
        if kind == "json_object" and not llm_model.supports_response_format_json_object:
            raise _invalid(f"{name} does not support response_format json_object")
        if kind == "json_schema" and not llm_model.supports_response_format_json_schema:
            raise _invalid(f"{name} does not support response_format json_schema")
        if kind not in ("text", "json_object", "json_schema"):
            raise _invalid("response_format.type must be text, json_object or json_schema")
    if tools and response_format is not None:
        raise _invalid("tools and response_format cannot be used together")
    if stream and (tools or response_format is not None):
        raise _invalid("streaming cannot be combined with tools or response_format")
    if not llm_model.supports_parallel_tool_calls:
        options.pop("parallel_tool_calls", None)
    elif response_format is not None:
        options["parallel_tool_calls"] = False
    elif tools:
        options.setdefault("parallel_tool_calls", False)


def _reserve_tokens(options: Mapping[str, Any]) -> int:
    reserve = options.get("max_tokens", options.get("max_completion_tokens"))
    if reserve is None:
        return 0
    if isinstance(reserve, bool) or not isinstance(reserve, int) or reserve < 0:
        raise _invalid("max_tokens must be a non-negative integer")
    return reserve


def _budget(
    llm_model: LLMModel,
    messages: list[dict[str, Any]],
    options: Mapping[str, Any],
    context: Mapping[str, Any],
    *,
    count_unlimited: bool = False,
) -> PromptBudget:
    """The prompt budget of this request; with an unlimited window (0) nothing is counted
    unless `count_unlimited` (the live meter still wants the number)."""
    estimation = context.get("token_estimation") or {}
    counting: dict[str, Any] = {
        "message_overhead_tokens": llm_model.effective_message_overhead_tokens,
        "estimator": estimation.get("token_estimator") or default_estimator(),
        "model_hint": estimation.get("model_hint") or llm_model.model,
    }
    budget = check_prompt_budget(
        messages,
        context_window_tokens=llm_model.context_window_tokens,
        reserve_tokens=_reserve_tokens(options),
        **counting,
    )
    if budget.estimated_tokens is None and count_unlimited:
        return replace(budget, estimated_tokens=estimate_prompt_tokens(messages, **counting))
    return budget


def _check_budget(
    llm_model: LLMModel,
    messages: list[dict[str, Any]],
    options: Mapping[str, Any],
    context: Mapping[str, Any],
) -> None:
    budget = _budget(llm_model, messages, options, context)
    if budget.exceeded:
        raise _Invalid(
            Result.failure(
                codes.PROMPT_TOO_LONG,
                f"prompt is too long: about {budget.estimated_tokens} tokens, "
                f"the limit is {budget.limit_tokens} ({budget.max_tokens} context window "
                f"− {budget.reserve_tokens} reserved for the reply)",
                estimated_tokens=budget.estimated_tokens,
                max_tokens=budget.max_tokens,
                reserve_tokens=budget.reserve_tokens,
                limit_tokens=budget.limit_tokens,
            )
        )


@dataclass(frozen=True)
class _Draft:
    """A request built from the inputs, before the capability and budget checks."""

    preset: LLMPreset | None
    options: dict[str, Any]
    messages: list[dict[str, Any]]
    context: dict[str, Any]
    warning: str | None


def _draft(
    llm_model: Any,
    *,
    user_text: Any,
    history: Any,
    system: Any,
    context: Any,
    preset: Any,
    preset_key: Any,
    llm_options: Any,
    allow_disabled: bool,
) -> _Draft:
    """Types, enabled gate, preset, option merge, messages: raises _Invalid on a rule."""
    _check_types(llm_model, user_text, history, system, context, llm_options)
    if not llm_model.enabled and not allow_disabled:
        raise _Invalid(Result.failure(codes.MODEL_DISABLED, f"{llm_model.name} is disabled"))
    context = _string_keys(context or {})
    chosen_preset = _resolve_preset(llm_model, preset, preset_key)
    options = _merge_options(llm_model, chosen_preset, llm_options)
    policy = language_policy(context.get("language_policy"))
    messages = _build_messages(system, policy.instruction, history, user_text)
    return _Draft(chosen_preset, options, messages, context, policy.warning)


def prepare_chat(
    llm_model: Any,
    *,
    user_text: Any = None,
    history: Any = None,
    system: Any = None,
    context: Any = None,
    preset: Any = None,
    preset_key: Any = None,
    llm_options: Any = None,
    allow_disabled: bool = False,
    client: Any = None,
    stream: bool = False,
) -> PreparedChat | Result:
    """Check every rule and build the request; a failure `Result` when a rule says no."""
    try:
        draft = _draft(
            llm_model,
            user_text=user_text,
            history=history,
            system=system,
            context=context,
            preset=preset,
            preset_key=preset_key,
            llm_options=llm_options,
            allow_disabled=allow_disabled,
        )
        _preflight(llm_model, draft.options, stream)
        _check_budget(llm_model, draft.messages, draft.options, draft.context)
    except _Invalid as invalid:
        return invalid.result
    request: dict[str, Any] = {"model": llm_model.model, "messages": draft.messages}
    request |= draft.options
    if stream:
        request |= {"stream": True, "stream_options": {"include_usage": True}}
    provider = llm_model.llm_provider
    return PreparedChat(
        llm_model=llm_model,
        preset=draft.preset,
        request=request,
        client=client if client is not None else client_for(provider),
        secrets=provider_secrets(provider),
        warnings=[draft.warning] if draft.warning else [],
    )


def _sdk_arguments(request: Mapping[str, Any]) -> dict[str, Any]:
    """Named SDK parameters as keyword arguments, the rest (top_k, min_p …) in extra_body."""
    arguments = {
        k: v
        for k, v in request.items()
        if k in SDK_PARAMETERS or k in ("model", "messages", "stream")
    }
    extra = {k: v for k, v in request.items() if k not in arguments}
    if extra:
        arguments["extra_body"] = extra
    return arguments


def describe_upstream_error(error: BaseException, secrets: list[str]) -> str:
    """A readable one-line reason for a failed provider call, with secrets removed."""
    if isinstance(error, openai.APITimeoutError):
        message = "the provider did not answer in time (timeout)"
    elif isinstance(error, openai.APIConnectionError):
        # Refused, reset, or dropped mid-stream: the cause says which.
        cause = error.__cause__ or error
        message = f"the connection to the provider failed: {cause}"
    elif isinstance(error, openai.APIStatusError):
        body = error.body if isinstance(error.body, Mapping) else {}
        detail = body.get("message") or error.message
        message = f"the provider answered HTTP {error.status_code}: {detail}"
    elif isinstance(error, openai.APIError):
        message = f"the provider reported an error: {error.message}"
    else:
        message = f"the request failed: {type(error).__name__}: {error}"
    return scrub(message, secrets)


def _elapsed_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


def _usage_dict(usage: Any) -> dict[str, Any] | None:
    if usage is None:
        return None
    return usage.model_dump(exclude_none=True) if hasattr(usage, "model_dump") else dict(usage)


def _success_value(prepared: PreparedChat, content: str, **details: Any) -> dict[str, Any]:
    return {
        "llm_model": prepared.llm_model,
        "preset": prepared.preset,
        "request": prepared.request,
        "assistant_message": {"role": "assistant", "content": content},
        "warnings": prepared.warnings,
        **details,
    }


def send_chat(prepared: PreparedChat) -> Result:
    """Send a prepared, non-streaming request; LLM_REQUEST_FAILED on any upstream failure."""
    start = time.perf_counter()
    try:
        response = prepared.client.chat.completions.create(**_sdk_arguments(prepared.request))
        choice = response.choices[0]
        content = choice.message.content or ""
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


def stream_prepared(prepared: PreparedChat) -> Iterator[StreamEvent]:
    """Deltas, then one `done` or `error` event. Closing the generator closes the upstream."""
    start = time.perf_counter()
    first_token_ms: float | None = None
    pieces: list[str] = []
    usage: Any = None
    finish_reason: str | None = None
    try:
        with prepared.client.chat.completions.create(**_sdk_arguments(prepared.request)) as chunks:
            for chunk in chunks:
                usage = chunk.usage or usage
                for choice in chunk.choices:
                    finish_reason = choice.finish_reason or finish_reason
                    text = choice.delta.content if choice.delta else None
                    if text:
                        if first_token_ms is None:
                            first_token_ms = _elapsed_ms(start)
                        pieces.append(text)
                        yield StreamEvent("delta", content=text)
    except Exception as error:  # the edge: whatever the provider or transport did
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


class ChatArguments(TypedDict, total=False):
    """The keyword arguments of run_chat and stream_chat (see prepare_chat)."""

    user_text: str | None
    history: list[dict[str, Any]] | None
    system: str | None
    context: Mapping[str, Any] | None
    preset: LLMPreset | None
    preset_key: str | None
    llm_options: Mapping[str, Any] | None
    allow_disabled: bool
    client: Any


def run_chat(llm_model: LLMModel, **arguments: Unpack[ChatArguments]) -> Result:
    """Run one chat completion for `llm_model`; see the module docstring for the rules.

    `client` is an `openai.OpenAI`-compatible object; by default the provider's own.
    """
    prepared = prepare_chat(llm_model, **arguments, stream=False)
    if isinstance(prepared, Result):
        return prepared
    return send_chat(prepared)


def stream_chat(llm_model: LLMModel, **arguments: Unpack[ChatArguments]) -> Iterator[StreamEvent]:
    """Like run_chat, streamed: every check and database read happens now, at the call;
    the returned iterator then only talks to the provider (safe inside a response body).
    """
    prepared = prepare_chat(llm_model, **arguments, stream=True)
    if isinstance(prepared, Result):
        return iter([StreamEvent("error", result=prepared)])
    return stream_prepared(prepared)


def preview_prompt_budget(llm_model: LLMModel, **arguments: Unpack[ChatArguments]) -> Result:
    """The token budget a chat request would meet, without sending it (a live meter's numbers).

    Takes stream_chat's arguments and runs prepare_chat's steps up to the budget — types,
    enabled gate, preset, option merge, messages, reserve from max_tokens — with the same
    estimator, so the numbers are the ones the request will be checked against. The value
    holds estimated_tokens, max_tokens (the context window), reserve_tokens, limit_tokens
    and exceeded; with an unlimited window (0) the prompt is still estimated and never
    exceeds. A rule that fails returns the failure prepare_chat would (EMPTY_PROMPT, …).
    """
    try:
        draft = _draft(
            llm_model,
            user_text=arguments.get("user_text"),
            history=arguments.get("history"),
            system=arguments.get("system"),
            context=arguments.get("context"),
            preset=arguments.get("preset"),
            preset_key=arguments.get("preset_key"),
            llm_options=arguments.get("llm_options"),
            allow_disabled=arguments.get("allow_disabled", False),
        )
        budget = _budget(
            llm_model, draft.messages, draft.options, draft.context, count_unlimited=True
        )
    except _Invalid as invalid:
        return invalid.result
    return Result.ok(
        estimated_tokens=budget.estimated_tokens,
        max_tokens=budget.max_tokens,
        reserve_tokens=budget.reserve_tokens,
        limit_tokens=budget.limit_tokens,
        exceeded=budget.exceeded,
        preset=draft.preset,
    )
