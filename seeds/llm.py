"""LLM configuration seeds: providers, the OpenRouter catalog with presets, the mock.

Create-only: a row that exists (looked up by its natural key) is left exactly as it is, so
re-running never overwrites what a user edited. Two runs racing each other are settled by
the unique constraints: the loser finds the winner's row and leaves it alone.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from webapp.models import LLMModel, LLMPreset, LLMProvider, ValidationError, acting_as
from webapp.models.llm import DEFAULT_PRESET_KEY
from webapp.models.validation import is_private_target
from webapp.services.records import lock_for_writing

T = TypeVar("T", LLMProvider, LLMModel, LLMPreset)

MOCK_PROVIDER_NAME = "Mock (Local)"
OPENROUTER = "OpenRouter"

# (name, base_url, api_prefix); every provider speaks the "openai" api_format.
PROVIDERS: tuple[tuple[str, str, str], ...] = (
    (OPENROUTER, "https://openrouter.ai/api", "/v1"),
    ("Volcengine (火山引擎)", "https://ark.cn-beijing.volces.com/api", "/v3"),
    ("Ollama (Local)", "http://localhost:11434", "/v1"),
    ("OpenAI", "https://api.openai.com", "/v1"),
    ("DeepSeek", "https://api.deepseek.com", "/v1"),
    ("Groq", "https://api.groq.com/openai", "/v1"),
    ("Together AI", "https://api.together.xyz", "/v1"),
    ("Custom", "http://localhost:8000", "/v1"),
)
# Local servers that take no API key (the mock too): their models are usable without one.
KEYLESS_PROVIDERS = frozenset({"Ollama (Local)", "Custom"})

OPENROUTER_MODELS: tuple[str, ...] = (
    "deepseek/deepseek-v3.2:nitro",
    "deepseek/deepseek-chat-v3-0324:nitro",
    "x-ai/grok-4.1-fast",
    "google/gemini-2.5-flash:nitro",
    "google/gemini-3-flash-preview:nitro",
    "google/gemini-3-pro-preview:nitro",
    "anthropic/claude-opus-4.6:nitro",
    "openai/gpt-5.2-chat:nitro",
    "openai/gpt-5.2:nitro",
    "minimax/minimax-m2-her",
    "minimax/minimax-m2.5:nitro",
    "qwen/qwen3-30b-a3b-instruct-2507:nitro",
    "qwen/qwen3-next-80b-a3b-instruct:nitro",
    "qwen/qwen3-235b-a22b-2507:nitro",
    "z-ai/glm-5:nitro",
    "z-ai/glm-4.7-flash:nitro",
    "moonshotai/kimi-k2.5:nitro",
)

# Capability exceptions by glob; every OpenRouter model otherwise supports all five.
# Later entries refine earlier ones (minimax-m2-her also loses tool calling).
CAPABILITY_EXCEPTIONS: tuple[tuple[str, dict[str, bool]], ...] = (
    ("anthropic/*", {"supports_response_format_json_schema": False}),
    (
        "openai/*",
        {
            "supports_response_format_json_object": False,
            "supports_response_format_json_schema": False,
        },
    ),
    (
        "minimax/*",
        {
            "supports_response_format_json_object": False,
            "supports_response_format_json_schema": False,
        },
    ),
    ("minimax/minimax-m2-her", {"supports_tool_calling": False}),
)

# First matching glob wins: (glob, profile id, overrides).
SAMPLING_PROFILES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (
        "deepseek/deepseek-v3.2*",
        "deepseek_v3_2_local_recommended",
        {"temperature": 1.0, "top_p": 0.95},
    ),
    ("x-ai/grok-*", "grok_default", {"temperature": 0.3}),
    (
        "qwen/qwen3-*",
        "qwen_recommended",
        {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": 0},
    ),
    ("moonshotai/kimi-k2.5*", "kimi_k2_5_instant", {"temperature": 0.6, "top_p": 0.95}),
)


@dataclass
class SeedReport:
    """What a seed run created and what it found already there (and left alone)."""

    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def record(self, label: str, created: bool) -> None:
        (self.created if created else self.existing).append(label)


def capabilities_for(model_id: str) -> dict[str, bool]:
    capabilities = {
        "supports_tool_calling": True,
        "supports_response_format_json_object": True,
        "supports_response_format_json_schema": True,
        "supports_streaming": True,
        "supports_parallel_tool_calls": True,
    }
    for pattern, overrides in CAPABILITY_EXCEPTIONS:
        if fnmatch.fnmatchcase(model_id, pattern):
            capabilities.update(overrides)
    return capabilities


def sampling_profile_for(model_id: str) -> tuple[str | None, dict[str, Any]]:
    for pattern, profile, overrides in SAMPLING_PROFILES:
        if fnmatch.fnmatchcase(model_id, pattern):
            return profile, dict(overrides)
    return None, {}


def openrouter_headers(settings: Mapping[str, Any]) -> dict[str, str]:
    headers = {
        "HTTP-Referer": settings.get("OPENROUTER_HTTP_REFERER"),
        "X-Title": settings.get("OPENROUTER_X_TITLE"),
    }
    return {name: value for name, value in headers.items() if value}


def _find_or_create(
    session: Session, lookup: Any, build: Callable[[], T], label: str, report: SeedReport
) -> T:
    found = session.scalars(lookup).first()
    if found is not None:
        report.record(label, created=False)
        return found
    try:
        with session.begin_nested():
            row = build()
            session.add(row)
    except (IntegrityError, ValidationError):
        # Another run created it between our lookup and insert: theirs stands.
        found = session.scalars(lookup).first()
        if found is None:
            raise
        report.record(label, created=False)
        return found
    report.record(label, created=True)
    return row


def _seed_provider(
    session: Session,
    report: SeedReport,
    name: str,
    base_url: str,
    api_prefix: str,
    headers: dict[str, str] | None = None,
    *,
    requires_api_key: bool = True,
) -> LLMProvider:
    return _find_or_create(
        session,
        select(LLMProvider).where(LLMProvider.name == name),
        lambda: LLMProvider(
            name=name,
            api_format="openai",
            base_url=base_url,
            api_prefix=api_prefix,
            headers=headers or {},
            requires_api_key=requires_api_key,
        ),
        f"provider {name}",
        report,
    )


def _seed_model(
    session: Session, report: SeedReport, provider: LLMProvider, **attributes: Any
) -> LLMModel:
    model_id = attributes["model"]
    return _find_or_create(
        session,
        select(LLMModel).where(LLMModel.llm_provider_id == provider.id, LLMModel.model == model_id),
        lambda: LLMModel(llm_provider=provider, **attributes),
        f"model {provider.name} / {model_id}",
        report,
    )


def _seed_default_preset(
    session: Session,
    report: SeedReport,
    model: LLMModel,
    comment: str,
    overrides: dict[str, Any],
) -> LLMPreset:
    return _find_or_create(
        session,
        select(LLMPreset).where(LLMPreset.llm_model_id == model.id, LLMPreset.is_default),
        lambda: LLMPreset(
            llm_model=model,
            key=DEFAULT_PRESET_KEY,
            name="Default",
            comment=comment,
            llm_options_overrides=overrides,
        ),
        f"preset {model.model} / {DEFAULT_PRESET_KEY}",
        report,
    )


def seed_openrouter_catalog(session: Session, report: SeedReport, provider: LLMProvider) -> None:
    for model_id in OPENROUTER_MODELS:
        model = _seed_model(
            session,
            report,
            provider,
            model=model_id,
            name=model_id,
            enabled=True,
            **capabilities_for(model_id),
        )
        profile, overrides = sampling_profile_for(model_id)
        comment = f"Production recommended sampling profile: {profile or '(none)'}"
        _seed_default_preset(session, report, model, comment, overrides)


# Mock models that lack features and answer 400 naming them, as real providers do
# (webapp.mock_llm.replies.MODEL_LIMITS), so a capability probe's "no" can be seen locally.
# Their flags say the truth; the "mock" model above can do everything but claims only
# streaming, so probing it shows flags to apply.
LIMITED_MOCK_MODELS: tuple[dict[str, Any], ...] = (
    {
        "model": "mock-basic",
        "name": "Mock Basic (no tools, no JSON modes)",
        "key": "mock-basic",
        "enabled": True,
        "supports_streaming": True,
    },
    {
        "model": "mock-lite",
        "name": "Mock Lite (no streaming, no parallel tools, no JSON schema)",
        "key": "mock-lite",
        "enabled": True,
        "supports_tool_calling": True,
        "supports_response_format_json_object": True,
    },
)


def mock_base_url(session: Session) -> str | None:
    """Where the seeded mock provider points (None when it is not there)."""
    query = select(LLMProvider.base_url).where(LLMProvider.name == MOCK_PROVIDER_NAME)
    return session.scalars(query).first()


def seed_mock(session: Session, report: SeedReport, base_url: str) -> None:
    provider = _seed_provider(
        session, report, MOCK_PROVIDER_NAME, base_url, "/mock_llm/v1", requires_api_key=False
    )
    model = _seed_model(
        session,
        report,
        provider,
        model="mock",
        name="Mock",
        key="mock",
        enabled=True,
        supports_streaming=True,
    )
    _seed_default_preset(
        session, report, model, "Deterministic sampling for the mock.", {"temperature": 0.0}
    )
    for attributes in LIMITED_MOCK_MODELS:
        _seed_model(session, report, provider, **attributes)


def seed_llm(session: Session, settings: Mapping[str, Any]) -> SeedReport:
    """Create whatever of the LLM seed data is missing; commit; report what happened.

    `settings` is the app config: MODELDESK_ENV decides whether the mock is seeded,
    MOCK_LLM_BASE_URL and OPENROUTER_* fill in provider fields.
    """
    # History: rows created here are recorded as the seed's (or the command's that ran it).
    with acting_as("seed", unless_set=True):
        return _seed_llm(session, settings)


def _seed_llm(session: Session, settings: Mapping[str, Any]) -> SeedReport:
    report = SeedReport()
    lock_for_writing(session)
    for name, base_url, api_prefix in PROVIDERS:
        if settings.get("BLOCK_PRIVATE_URLS") and is_private_target(base_url):
            report.skipped.append(f"provider {name} (private address blocked)")
            continue
        headers = openrouter_headers(settings) if name == OPENROUTER else None
        provider = _seed_provider(
            session,
            report,
            name,
            base_url,
            api_prefix,
            headers,
            requires_api_key=name not in KEYLESS_PROVIDERS,
        )
        if name == OPENROUTER:
            seed_openrouter_catalog(session, report, provider)
    if settings.get("MODELDESK_ENV") in ("development", "test") and not settings.get(
        "BLOCK_PRIVATE_URLS"
    ):
        seed_mock(session, report, settings["MOCK_LLM_BASE_URL"])
    session.commit()
    return report
