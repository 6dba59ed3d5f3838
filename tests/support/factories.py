"""Small builders for test rows."""

from __future__ import annotations

from typing import Any

from webapp.extensions import db
from webapp.models import LLMModel, LLMPreset, LLMProvider


def make_provider(**attributes: Any) -> LLMProvider:
    """A provider; keyless unless told, so its models are usable in the chat without a key
    (the picker's own tests say requires_api_key=True)."""
    values = {
        "name": "Acme",
        "base_url": "https://llm.example.com",
        "api_prefix": "/v1",
        "requires_api_key": False,
    }
    provider = LLMProvider(**{**values, **attributes})
    db.session.add(provider)
    db.session.commit()
    return provider


def make_model(provider: LLMProvider, **attributes: Any) -> LLMModel:
    values: dict[str, Any] = {"model": "acme-1", "name": "Acme 1"}
    model = LLMModel(llm_provider=provider, **{**values, **attributes})
    db.session.add(model)
    db.session.commit()
    return model


def make_preset(model: LLMModel, **attributes: Any) -> LLMPreset:
    values: dict[str, Any] = {"name": "Default", "key": "default"}
    preset = LLMPreset(llm_model=model, **{**values, **attributes})
    db.session.add(preset)
    db.session.commit()
    return preset
