"""The configuration the engine works from: plain, immutable values, never database rows.

The services build these from the ORM rows once per request (or cache them); the engine
never needs a session, so a prepared request can stream long after the rows were loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from webapp.llm.secrets import secret_values


@dataclass(frozen=True)
class ProviderSpec:
    """An OpenAI-compatible endpoint: where requests go, with what, and its option defaults."""

    name: str
    endpoint: str
    api_key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    llm_options_defaults: Mapping[str, Any] = field(default_factory=dict)

    @property
    def secrets(self) -> list[str]:
        """The values that must never be shown: the key and every header value."""
        return secret_values(self.api_key, self.headers)


@dataclass(frozen=True)
class PresetSpec:
    """A named set of option overrides for one model."""

    id: int | None
    key: str | None
    name: str
    llm_options_overrides: Mapping[str, Any] = field(default_factory=dict)
    # The preset a request gets when it names none.
    is_default: bool = False


@dataclass(frozen=True)
class ModelSpec:
    """A model of a provider with its capabilities, budget settings and presets."""

    id: int | None
    model: str
    name: str
    provider: ProviderSpec
    enabled: bool = True
    supports_streaming: bool = False
    supports_tool_calling: bool = False
    supports_response_format_json_object: bool = False
    supports_response_format_json_schema: bool = False
    supports_parallel_tool_calls: bool = False
    context_window_tokens: int = 0
    # Already resolved: the model's own value, or its provider's when the model has none.
    message_overhead_tokens: int = 0
    presets: tuple[PresetSpec, ...] = ()

    @property
    def default_preset(self) -> PresetSpec | None:
        return next((preset for preset in self.presets if preset.is_default), None)

    def preset_with_key(self, key: str | None) -> PresetSpec | None:
        """The preset with this key (compared normalized, as keys are stored), or None."""
        if key is None:
            return None
        wanted = key.strip().lower()
        return next((preset for preset in self.presets if preset.key == wanted), None)
