"""Preparing a chat request (the spec's LLM::RunChat, before anything is sent).

Every rule is checked before anything is sent — enabled gate, preset, options, messages,
language policy, capabilities, token budget — and a rule that says no comes back as a
failure `Result`, never an exception. A `PreparedChat` needs nothing else to be sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from webapp.llm import results as codes
from webapp.llm.budget import (
    PromptBudget,
    check_prompt_budget,
    default_estimator,
    estimate_prompt_tokens,
)
from webapp.llm.language import language_policy
from webapp.llm.options import (
    CALL_LAYER,
    REQUEST_ONLY_OPTIONS,
    MergedOptions,
    merge_options,
    set_by,
)
from webapp.llm.results import Result
from webapp.llm.rules import Invalid, invalid, unsupported
from webapp.llm.secrets import MASK
from webapp.llm.specs import ModelSpec, PresetSpec

MESSAGE_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


@dataclass(frozen=True)
class PreparedChat:
    """Everything needed to send the request; no database access is needed after this."""

    llm_model: ModelSpec
    preset: PresetSpec | None
    request: dict[str, Any]
    client: Any
    warnings: list[str] = field(default_factory=list)

    @property
    def secrets(self) -> list[str]:
        return self.llm_model.provider.secrets


def _string_keys(value: Any) -> Any:
    """Context may use str or enum-like keys (the spec's symbols); normalize to str."""
    if isinstance(value, Mapping):
        return {str(getattr(k, "value", k)): _string_keys(v) for k, v in value.items()}
    return value


def _check_types(
    llm_model: Any,
    user_text: Any,
    history: Any,
    system: Any,
    context: Any,
    llm_options: Any,
    request_options: Any,
) -> None:
    if not isinstance(llm_model, ModelSpec):
        raise invalid("llm_model must be a ModelSpec")
    for name, value in (("user_text", user_text), ("system", system)):
        if value is not None and not isinstance(value, str):
            raise invalid(f"{name} must be a string")
    if history is not None and not isinstance(history, list | tuple):
        raise invalid("history must be a list of messages")
    mappings = (("context", context), ("llm_options", llm_options))
    for name, value in (*mappings, ("request_options", request_options)):
        if value is not None and not isinstance(value, Mapping):
            raise invalid(f"{name} must be a mapping")
    unknown = sorted(set(request_options or ()) - REQUEST_ONLY_OPTIONS)
    if unknown:
        raise invalid(f"request_options may not set {', '.join(unknown)}")


def _resolve_preset(llm_model: ModelSpec, preset: Any, preset_key: Any) -> PresetSpec | None:
    """Explicit preset > preset_key > the model's default preset, if any."""
    if preset is not None:
        if not isinstance(preset, PresetSpec) or preset not in llm_model.presets:
            raise invalid("preset does not belong to this model")
        return preset
    if preset_key is None:
        return llm_model.default_preset
    found = llm_model.preset_with_key(str(preset_key))
    if found is None:
        raise Invalid(
            Result.failure(
                codes.PRESET_NOT_FOUND, f"no preset with key {preset_key!r} for this model"
            )
        )
    return found


def _checked_messages(items: Any, name: str) -> list[dict[str, Any]]:
    """Role/content dicts as the API takes them; tool calls and tool results pass through."""
    if not isinstance(items, list | tuple):
        raise invalid(f"{name} must be a list of messages")
    checked: list[dict[str, Any]] = []
    for index, message in enumerate(items):
        if not isinstance(message, Mapping):
            raise invalid(f"{name}[{index}] must be a mapping with role and content")
        role, content = message.get("role"), message.get("content")
        if role not in MESSAGE_ROLES:
            raise invalid(f"{name}[{index}].role must be one of {', '.join(sorted(MESSAGE_ROLES))}")
        if content is not None and not isinstance(content, str | list):
            raise invalid(f"{name}[{index}].content must be a string or a list of parts")
        checked.append(dict(message))
    return checked


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
    messages += _checked_messages(history or [], "history")
    if user_text is not None and user_text.strip():
        messages.append({"role": "user", "content": user_text})
    return _with_prompt(messages)


def _with_prompt(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not any(m["role"] != "system" for m in messages):
        raise Invalid(Result.failure(codes.EMPTY_PROMPT, "there is no prompt to send"))
    return messages


def _whole_conversation(
    messages: Any, language_instruction: str | None, separate_inputs: tuple[Any, ...]
) -> list[dict[str, Any]]:
    """An API caller's own `messages` list, sent as it is (after the language instruction)."""
    if any(value is not None for value in separate_inputs):
        raise invalid("messages cannot be combined with system, history or user_text")
    instruction = [{"role": "system", "content": language_instruction}]
    return _with_prompt(
        (instruction if language_instruction else []) + _checked_messages(messages, "messages")
    )


def _preflight(
    llm_model: ModelSpec, options: dict[str, Any], stream: bool, origins: Mapping[str, str]
) -> None:
    """Reject what the model cannot do, naming the option and the layer that set it;
    settle parallel_tool_calls."""
    name = llm_model.name
    tools = options.get("tools")
    response_format = options.get("response_format")
    streaming = f"streaming (set by {CALL_LAYER})"
    if stream and not llm_model.supports_streaming:
        raise unsupported(f"{streaming} is not supported by {name}", "stream")
    if tools and not llm_model.supports_tool_calling:
        raise unsupported(
            f"{set_by(origins, 'tools')}: {name} does not support tool calling", "tools"
        )
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, Mapping) else None
        option = f"response_format {kind} (set by {origins.get('response_format', CALL_LAYER)})"
        if kind == "json_object" and not llm_model.supports_response_format_json_object:
            raise unsupported(f"{option} is not supported by {name}", "response_format")
        if kind == "json_schema" and not llm_model.supports_response_format_json_schema:
            raise unsupported(f"{option} is not supported by {name}", "response_format")
        if kind not in ("text", "json_object", "json_schema"):
            raise invalid(
                f"{set_by(origins, 'response_format')}: its type must be text, json_object "
                "or json_schema"
            )
    if tools and response_format is not None:
        raise invalid(
            f"{set_by(origins, 'tools')} and {set_by(origins, 'response_format')} "
            "cannot be used together"
        )
    if stream and (tools or response_format is not None):
        other = set_by(origins, "tools" if tools else "response_format")
        raise invalid(f"{streaming} cannot be combined with {other}")
    if not llm_model.supports_parallel_tool_calls:
        options.pop("parallel_tool_calls", None)
    elif response_format is not None:
        options["parallel_tool_calls"] = False
    elif tools:
        options.setdefault("parallel_tool_calls", False)


def _reserve_tokens(options: Mapping[str, Any], origins: Mapping[str, str]) -> int:
    key = "max_tokens" if "max_tokens" in options else "max_completion_tokens"
    reserve = options.get(key)
    if reserve is None:
        return 0
    if isinstance(reserve, bool) or not isinstance(reserve, int) or reserve < 0:
        raise invalid(f"{set_by(origins, key)} must be a non-negative integer")
    return reserve


def _budget(
    llm_model: ModelSpec,
    messages: list[dict[str, Any]],
    options: MergedOptions,
    context: Mapping[str, Any],
    *,
    count_unlimited: bool = False,
) -> PromptBudget:
    """The prompt budget of this request; with an unlimited window (0) nothing is counted
    unless `count_unlimited` (the live meter still wants the number)."""
    counting = _counting(llm_model, context)
    budget = check_prompt_budget(
        messages,
        context_window_tokens=llm_model.context_window_tokens,
        reserve_tokens=_reserve_tokens(options.options, options.origins),
        **counting,
    )
    if budget.estimated_tokens is None and count_unlimited:
        return replace(budget, estimated_tokens=estimate_prompt_tokens(messages, **counting))
    return budget


def _counting(llm_model: ModelSpec, context: Mapping[str, Any]) -> dict[str, Any]:
    """How this request's tokens are counted: estimator, model hint, overhead per message."""
    estimation = context.get("token_estimation") or {}
    return {
        "message_overhead_tokens": llm_model.message_overhead_tokens,
        "estimator": estimation.get("token_estimator") or default_estimator(),
        "model_hint": estimation.get("model_hint") or llm_model.model,
    }


def _check_budget(
    llm_model: ModelSpec,
    messages: list[dict[str, Any]],
    options: MergedOptions,
    context: Mapping[str, Any],
) -> None:
    budget = _budget(llm_model, messages, options, context)
    if budget.exceeded:
        raise Invalid(
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

    preset: PresetSpec | None
    options: MergedOptions
    messages: list[dict[str, Any]]
    context: dict[str, Any]
    warning: str | None
    # The caller's own stream_options (request_options), sent with include_usage forced on.
    stream_options: Mapping[str, Any]


def _draft(
    llm_model: Any,
    *,
    user_text: Any = None,
    history: Any = None,
    system: Any = None,
    messages: Any = None,
    context: Any = None,
    preset: Any = None,
    preset_key: Any = None,
    llm_options: Any = None,
    request_options: Any = None,
    allow_disabled: bool = False,
) -> _Draft:
    """Types, enabled gate, preset, option merge, messages: raises Invalid on a rule."""
    _check_types(llm_model, user_text, history, system, context, llm_options, request_options)
    if not llm_model.enabled and not allow_disabled:
        raise Invalid(Result.failure(codes.MODEL_DISABLED, f"{llm_model.name} is disabled"))
    context = _string_keys(context or {})
    chosen_preset = _resolve_preset(llm_model, preset, preset_key)
    options = merge_options(llm_model, chosen_preset, llm_options, request_options)
    policy = language_policy(context.get("language_policy"))
    if messages is None:
        built = _build_messages(system, policy.instruction, history, user_text)
    else:
        built = _whole_conversation(messages, policy.instruction, (system, history, user_text))
    stream_options = (request_options or {}).get("stream_options") or {}
    if not isinstance(stream_options, Mapping):
        raise invalid("stream_options must be a mapping")
    return _Draft(chosen_preset, options, built, context, policy.warning, stream_options)


def prepare_chat(
    llm_model: Any, *, client: Any, stream: bool = False, **inputs: Any
) -> PreparedChat | Result:
    """Check every rule and build the request for `client` (an `openai.OpenAI`-compatible
    object); a failure `Result` when a rule says no.

    `inputs`: user_text, history, system, context, preset (a PresetSpec of the model),
    preset_key, llm_options, allow_disabled — as run_chat documents them. An API caller (the
    gateway) passes instead `messages`, its whole conversation, and `request_options`, the
    keys of REQUEST_ONLY_OPTIONS its request set (which then come from there alone); its
    other options are `llm_options`, the call layer of the merge.
    """
    try:
        draft = _draft(llm_model, **inputs)
        _preflight(llm_model, draft.options.options, stream, draft.options.origins)
        _check_budget(llm_model, draft.messages, draft.options, draft.context)
    except Invalid as invalid:
        return invalid.result
    request: dict[str, Any] = {"model": llm_model.model, "messages": draft.messages}
    request |= draft.options.options
    if stream:
        stream_options = {**draft.stream_options, "include_usage": True}
        request |= {"stream": True, "stream_options": stream_options}
    return PreparedChat(
        llm_model=llm_model,
        preset=draft.preset,
        request=request,
        client=client,
        warnings=[draft.warning] if draft.warning else [],
    )


def preview_prompt_budget(llm_model: ModelSpec, **inputs: Any) -> Result:
    """The token budget a chat request would meet, without sending it (a live meter's numbers).

    Takes prepare_chat's arguments and runs its steps up to the budget — types,
    enabled gate, preset, option merge, messages, reserve from max_tokens — with the same
    estimator, so the numbers are the ones the request will be checked against. The value
    holds estimated_tokens, max_tokens (the context window), reserve_tokens, limit_tokens
    and exceeded; with an unlimited window (0) the prompt is still estimated and never
    exceeds. A rule that fails returns the failure prepare_chat would (EMPTY_PROMPT, …).
    """
    try:
        draft = _draft(llm_model, **inputs)
        budget = _budget(
            llm_model, draft.messages, draft.options, draft.context, count_unlimited=True
        )
    except Invalid as invalid:
        return invalid.result
    return Result.ok(
        estimated_tokens=budget.estimated_tokens,
        max_tokens=budget.max_tokens,
        reserve_tokens=budget.reserve_tokens,
        limit_tokens=budget.limit_tokens,
        exceeded=budget.exceeded,
        preset=draft.preset,
    )


def fit_history(llm_model: ModelSpec, **inputs: Any) -> Result:
    """The `history` a request can send within the model's budget: its oldest whole turns
    left out, one by one, until the prompt fits.

    Takes prepare_chat's arguments. A turn is a user message and what follows it up to the
    next user message, so a question never goes without its answer. The system prompt, the
    language instruction and `user_text` are never left out. The value holds `history` (the
    turns kept, as given) and `left_out_turns`. When even no history at all is over the
    limit, every turn is left out: the request then meets its own budget check as
    PROMPT_TOO_LONG, with the numbers of the prompt that cannot be shortened. A rule that
    fails returns the failure prepare_chat would.
    """
    try:
        draft = _draft(llm_model, **inputs)
        budget = _budget(llm_model, draft.messages, draft.options, draft.context)
    except Invalid as invalid:
        return invalid.result
    history = list(inputs.get("history") or [])
    if not budget.exceeded or budget.estimated_tokens is None:
        return Result.ok(history=history, left_out_turns=0)
    # The estimate is a sum over messages, so leaving a turn out takes exactly its own count.
    counting = _counting(llm_model, draft.context)
    turns = _turns(history)
    excess = budget.estimated_tokens - budget.limit_tokens
    left_out = 0
    while left_out < len(turns) and excess > 0:
        excess -= estimate_prompt_tokens(turns[left_out], **counting)
        left_out += 1
    kept = [message for turn in turns[left_out:] for message in turn]
    return Result.ok(history=kept, left_out_turns=left_out)


def _turns(history: list[Any]) -> list[list[Any]]:
    """The history cut before each user message (what comes before the first is a turn too)."""
    turns: list[list[Any]] = []
    for message in history:
        if not turns or message.get("role") == "user":
            turns.append([])
        turns[-1].append(message)
    return turns


def preview_request(llm_model: ModelSpec, *, stream: bool = False, **inputs: Any) -> Result:
    """The exact request prepare_chat would build, without sending anything (a dry run).

    Every rule runs as for a real call, so a failure is the one the call would meet. The
    value holds `url` (<endpoint>/chat/completions), `headers` (Authorization and every
    provider header, each value masked), `body` (the JSON body, after preset resolution,
    option merge, language policy and preflight), `budget` (estimated_tokens, max_tokens
    — the context window, 0 = unlimited —, reserve_tokens, limit_tokens), `preset` and
    `warnings`.
    """
    prepared = prepare_chat(llm_model, client=None, stream=stream, **inputs)
    if isinstance(prepared, Result):
        return prepared
    budget = preview_prompt_budget(llm_model, **inputs).value
    headers = {"Authorization": MASK, "Content-Type": "application/json"}
    headers |= dict.fromkeys(llm_model.provider.headers, MASK)
    return Result.ok(
        url=f"{llm_model.provider.endpoint.rstrip('/')}/chat/completions",
        headers=headers,
        body=prepared.request,
        budget={
            name: budget[name]
            for name in ("estimated_tokens", "max_tokens", "reserve_tokens", "limit_tokens")
        },
        preset=prepared.preset,
        warnings=prepared.warnings,
    )
