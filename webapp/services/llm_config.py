"""The engine's view of the configuration: specs built from the rows, and its settings.

`webapp.llm` never sees a database row or the app: the services hand it the plain values
built here, and the client settings made once in `create_app`.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from webapp.llm.clients import ClientSettings, client_for
from webapp.llm.specs import ModelSpec, PresetSpec, ProviderSpec
from webapp.models import LLMModel, LLMPreset, LLMProvider

_SETTINGS = "llm_client_settings"


def init_llm_settings(app: Flask) -> None:
    """Build the provider-call settings from the app's configuration, once."""
    config = app.config
    app.extensions[_SETTINGS] = ClientSettings(
        request_timeout=float(config["LLM_REQUEST_TIMEOUT"]),
        connect_timeout=float(config["LLM_CONNECT_TIMEOUT"]),
        max_retries=int(config["LLM_MAX_RETRIES"]),
        block_private_addresses=bool(config["BLOCK_PRIVATE_URLS"]),
    )


def client_settings() -> ClientSettings:
    """The current app's provider-call settings."""
    return current_app.extensions[_SETTINGS]


def provider_spec(provider: LLMProvider) -> ProviderSpec:
    # A key or header value the current encryption key cannot read is not sent at all.
    return ProviderSpec(
        name=provider.name,
        endpoint=provider.endpoint,
        api_key=provider.api_key if provider.api_key_status == "set" else None,
        headers=provider.readable_headers,
        llm_options_defaults=dict(provider.llm_options_defaults or {}),
    )


def preset_spec(preset: LLMPreset) -> PresetSpec:
    return PresetSpec(
        id=preset.id,
        key=preset.key,
        name=preset.name,
        llm_options_overrides=dict(preset.llm_options_overrides or {}),
        is_default=preset.is_default,
    )


def model_spec(llm_model: LLMModel) -> ModelSpec:
    """The model with its provider and presets, as the engine takes it."""
    return ModelSpec(
        id=llm_model.id,
        model=llm_model.model,
        name=llm_model.name,
        provider=provider_spec(llm_model.llm_provider),
        enabled=llm_model.enabled,
        supports_streaming=llm_model.supports_streaming,
        supports_tool_calling=llm_model.supports_tool_calling,
        supports_response_format_json_object=llm_model.supports_response_format_json_object,
        supports_response_format_json_schema=llm_model.supports_response_format_json_schema,
        supports_parallel_tool_calls=llm_model.supports_parallel_tool_calls,
        context_window_tokens=llm_model.context_window_tokens,
        message_overhead_tokens=llm_model.effective_message_overhead_tokens,
        presets=tuple(preset_spec(preset) for preset in llm_model.llm_presets),
    )


def provider_client(provider: LLMProvider, settings: ClientSettings | None = None) -> Any:
    """The provider's cached SDK client, with the app's settings unless others are given."""
    return client_for(provider_spec(provider), settings or client_settings())
