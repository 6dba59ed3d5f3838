"""A request's options, merged from their layers: the provider's defaults, the preset's
overrides, the call's own (and an API caller's request-only keys), each key remembering the
layer that set it so an error can name it ("max_tokens (set by preset \"short\")").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webapp.llm.rules import invalid
from webapp.llm.specs import ModelSpec, PresetSpec

# Keys a caller's llm_options may not set: streaming is chosen by run_chat vs stream_chat.
CALLER_FORBIDDEN_OPTIONS = frozenset({"stream", "stream_options"})
# Keys the service owns; silently dropped from merged options.
SERVICE_OWNED_OPTIONS = frozenset({"model", "messages"})
# Keys an API caller (the gateway) owns outright: taken from its request only, never from
# the provider's defaults or a preset, because they describe that caller's own conversation.
REQUEST_ONLY_OPTIONS = frozenset({"tools", "tool_choice", "response_format", "stream_options"})


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge nested dicts key by key; any other value in `override` replaces the base's."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# Who set an option: a layer of the merge, named in errors ("set by preset \"strict\"").
CALL_LAYER = "the call"


def provider_layer(llm_model: ModelSpec) -> str:
    return f'provider "{llm_model.provider.name}" defaults'


def preset_layer(preset: PresetSpec) -> str:
    return f'preset "{preset.key or preset.name}"'


@dataclass(frozen=True)
class MergedOptions:
    """The merged options, and for each top-level key the layer(s) that set it."""

    options: dict[str, Any]
    origins: dict[str, str]


def _without(values: Mapping[str, Any], keys: frozenset[str]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if key not in keys}


def merge_options(
    llm_model: ModelSpec,
    preset: PresetSpec | None,
    llm_options: Mapping[str, Any] | None,
    request_options: Mapping[str, Any] | None,
) -> MergedOptions:
    requested = dict(llm_options or {})
    forbidden = sorted(CALLER_FORBIDDEN_OPTIONS & requested.keys())
    if forbidden:
        raise invalid(f"{CALL_LAYER}'s llm_options may not set {', '.join(forbidden)}")
    # With request_options, the request-only keys come from there and nowhere else.
    owned = REQUEST_ONLY_OPTIONS if request_options is not None else frozenset()
    layers: list[tuple[str, Mapping[str, Any]]] = [
        (provider_layer(llm_model), _without(llm_model.provider.llm_options_defaults, owned))
    ]
    if preset is not None:
        layers.append((preset_layer(preset), _without(preset.llm_options_overrides, owned)))
    layers.append((CALL_LAYER, _without(requested, owned)))
    stream_options = frozenset({"stream_options"})
    layers.append((CALL_LAYER, _without(request_options or {}, stream_options)))
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for layer, values in layers:
        for key, value in values.items():
            # A mapping merged into a mapping keeps both layers' keys: both set it.
            both = isinstance(value, Mapping) and isinstance(merged.get(key), Mapping)
            origins[key] = f"{origins[key]} and {layer}" if both else layer
        merged = deep_merge(merged, values)
    options = {k: v for k, v in merged.items() if k not in SERVICE_OWNED_OPTIONS}
    return MergedOptions(options, {k: origins[k] for k in options})


def set_by(origins: Mapping[str, str], key: str) -> str:
    return f"{key} (set by {origins.get(key, CALL_LAYER)})"
