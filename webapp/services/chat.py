"""The engine for configured models: run_chat, stream_chat and the connection test on rows.

These take the ORM rows (the public Python API of DESIGN.md), check what only the database
can tell (a preset belongs to the model), hand the engine plain specs, and give the rows
back in the result (`value["llm_model"]`, `value["preset"]`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any, TypedDict, Unpack

from webapp.llm import prepare, run
from webapp.llm import results as codes
from webapp.llm.results import Result
from webapp.llm.run import ChatStream, StreamEvent
from webapp.llm.specs import ModelSpec, PresetSpec
from webapp.models import LLMModel, LLMPreset
from webapp.models.types import utcnow
from webapp.services import records
from webapp.services.llm_config import model_spec, preset_spec, provider_client


class ChatArguments(TypedDict, total=False):
    """The keyword arguments of run_chat and stream_chat (see webapp.llm.prepare)."""

    user_text: str | None
    history: list[dict[str, Any]] | None
    system: str | None
    context: Mapping[str, Any] | None
    preset: LLMPreset | None
    preset_key: str | None
    llm_options: Mapping[str, Any] | None
    allow_disabled: bool
    client: Any


class _Call:
    """One call's rows and the engine's arguments built from them."""

    def __init__(self, llm_model: LLMModel, arguments: ChatArguments, *, with_client: bool):
        self.llm_model = llm_model
        self.spec = model_spec(llm_model)
        self.arguments: dict[str, Any] = dict(arguments)
        self.preset: LLMPreset | None = self.arguments.pop("preset", None)
        # Read now: a stream's result is mapped back after the session may be gone.
        self._presets = {preset.id: preset for preset in llm_model.llm_presets}
        if self.preset is not None:
            self._presets[self.preset.id] = self.preset
        if self.preset is not None:
            chosen = preset_spec(self.preset)
            if chosen not in self.spec.presets:  # made in this transaction, not yet loaded
                self.spec = replace(self.spec, presets=(*self.spec.presets, chosen))
            self.arguments["preset"] = chosen
        if with_client and self.arguments.get("client") is None:
            self.arguments["client"] = provider_client(llm_model.llm_provider)
        elif not with_client:
            self.arguments.pop("client", None)

    def rows(self, result: Result) -> Result:
        """The result with the model and preset rows in place of the engine's specs."""
        if "llm_model" not in result.value and "preset" not in result.value:
            return result
        value = dict(result.value)
        if "llm_model" in value:
            value["llm_model"] = self.llm_model
        if "preset" in value:
            value["preset"] = self._preset_row(value["preset"])
        return Result(result.success, result.code, result.errors, value)

    def _preset_row(self, spec: PresetSpec | None) -> LLMPreset | None:
        return self._presets.get(spec.id) if spec is not None else None


def _invalid_model_or_preset(llm_model: Any, arguments: ChatArguments) -> Result | None:
    if not isinstance(llm_model, LLMModel):
        return Result.failure(codes.INVALID_INPUT, "llm_model must be an LLMModel")
    preset = arguments.get("preset")
    if preset is not None and (
        not isinstance(preset, LLMPreset) or preset.llm_model_id != llm_model.id
    ):
        return Result.failure(codes.INVALID_INPUT, "preset does not belong to this model")
    return None


def run_chat(llm_model: LLMModel, **arguments: Unpack[ChatArguments]) -> Result:
    """Run one chat completion for `llm_model` (every rule of webapp.llm.prepare first).

    `client` is an `openai.OpenAI`-compatible object; by default the provider's own.
    """
    invalid = _invalid_model_or_preset(llm_model, arguments)
    if invalid is not None:
        return invalid
    call = _Call(llm_model, arguments, with_client=True)
    return call.rows(run.run_chat(call.spec, **call.arguments))


def stream_chat(llm_model: LLMModel, **arguments: Unpack[ChatArguments]) -> ChatStream:
    """Like run_chat, streamed: every check and database read happens now, at the call;
    the returned iterator then only talks to the provider (safe inside a response body)."""
    return _events(run.stream_chat, llm_model, arguments)


def chat_events(llm_model: LLMModel, **arguments: Unpack[ChatArguments]) -> ChatStream:
    """stream_chat for a model that streams; otherwise its whole reply as one delta."""
    return _events(run.chat_events, llm_model, arguments)


def _events(engine_call: Any, llm_model: LLMModel, arguments: ChatArguments) -> ChatStream:
    invalid = _invalid_model_or_preset(llm_model, arguments)
    if invalid is not None:
        return ChatStream.failed(invalid)
    call = _Call(llm_model, arguments, with_client=True)
    events = engine_call(call.spec, **call.arguments)
    return ChatStream(_with_rows(events, call), events.cancellation)


def _with_rows(events: ChatStream, call: _Call) -> Iterator[StreamEvent]:
    # A generator of its own, so closing it closes the engine's (and the upstream).
    try:
        for event in events:
            if event.result is not None:
                event = StreamEvent(event.type, event.content, call.rows(event.result))
            yield event
    finally:
        events.close()


def preview_prompt_budget(llm_model: LLMModel, **arguments: Unpack[ChatArguments]) -> Result:
    """The token budget a chat request would meet, without sending it (a live meter's
    numbers); see webapp.llm.prepare.preview_prompt_budget."""
    invalid = _invalid_model_or_preset(llm_model, arguments)
    if invalid is not None:
        return invalid
    call = _Call(llm_model, arguments, with_client=False)
    return call.rows(prepare.preview_prompt_budget(call.spec, **call.arguments))


def fit_history(llm_model: LLMModel, **arguments: Unpack[ChatArguments]) -> Result:
    """The history a chat request with `llm_model` can send within its budget, the oldest
    whole turns left out; see webapp.llm.prepare.fit_history."""
    invalid = _invalid_model_or_preset(llm_model, arguments)
    if invalid is not None:
        return invalid
    call = _Call(llm_model, arguments, with_client=False)
    return prepare.fit_history(call.spec, **call.arguments)


def preview_request(llm_model: LLMModel, **arguments: Unpack[ChatArguments]) -> Result:
    """The exact request a chat with `llm_model` would send (streamed when the model
    streams, as chat_events does), with URL, masked headers and budget — nothing is sent.
    See webapp.llm.prepare.preview_request."""
    invalid = _invalid_model_or_preset(llm_model, arguments)
    if invalid is not None:
        return invalid
    call = _Call(llm_model, arguments, with_client=False)
    return call.rows(
        prepare.preview_request(call.spec, stream=call.spec.supports_streaming, **call.arguments)
    )


def check_model_connection(llm_model: LLMModel, *, client: Any = None) -> Result:
    """Send one tiny completion to the model.

    Success sets `connection_tested_at` and clears the recorded failure; any failure clears
    it, records when and why (`connection_failed_at`, `connection_error`) and returns the
    reason (secrets removed). Works whether or not the model is enabled.
    """
    spec: ModelSpec = model_spec(llm_model)
    result = run.ping(spec, client or provider_client(llm_model.llm_provider))
    if not result.success:
        records.stamp(
            llm_model,
            connection_tested_at=None,
            connection_failed_at=utcnow(),
            connection_error=_short(" ".join(result.errors) or "failed"),
        )
        return result
    tested_at = utcnow()
    records.stamp(
        llm_model, connection_tested_at=tested_at, connection_failed_at=None, connection_error=None
    )
    return Result.ok(**result.value, tested_at=tested_at)


CONNECTION_ERROR_CHARS = 500


def _short(text: str) -> str:
    """The reason cut to fit its column."""
    if len(text) <= CONNECTION_ERROR_CHARS:
        return text
    return text[: CONNECTION_ERROR_CHARS - 1] + "…"
