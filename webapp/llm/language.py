"""The language-policy step: an instruction to answer in the caller's target language."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Canonical code → the language's name as the instruction spells it.
LANGUAGES: dict[str, str] = {
    "en-US": "English",
    "zh-CN": "Simplified Chinese",
    "zh-TW": "Traditional Chinese",
    "ko-KR": "Korean",
    "ja-JP": "Japanese",
    "yue-HK": "Cantonese",
}

ALIASES: dict[str, str] = {
    "en": "en-US",
    "english": "en-US",
    "zh": "zh-CN",
    "zh-hans": "zh-CN",
    "zh-hans-cn": "zh-CN",
    "zh-hant": "zh-TW",
    "zh-hant-tw": "zh-TW",
    "ko": "ko-KR",
    "ja": "ja-JP",
    "jp": "ja-JP",
    "yue": "yue-HK",
    "zh-hk": "yue-HK",
    "zh-yue": "yue-HK",
}
_BY_LOWER = {code.lower(): code for code in LANGUAGES} | ALIASES


def canonical_language(tag: Any) -> str | None:
    """The supported code for a tag ("zh-cn", "ja", "zh_TW" …), or None when unsupported."""
    if not isinstance(tag, str):
        return None
    return _BY_LOWER.get(tag.strip().replace("_", "-").lower())


@dataclass(frozen=True)
class LanguagePolicy:
    instruction: str | None
    warning: str | None = None


def language_policy(settings: Mapping[str, Any] | None) -> LanguagePolicy:
    """Build the system instruction for `context["language_policy"]`.

    Disabled or absent → nothing. An unsupported language disables the step with a
    warning instead of guessing.
    """
    if not settings or not settings.get("enabled"):
        return LanguagePolicy(instruction=None)
    target = settings.get("target_lang")
    code = canonical_language(target)
    if code is None:
        supported = ", ".join(LANGUAGES)
        return LanguagePolicy(
            instruction=None,
            warning=f"language_policy: unsupported target_lang {target!r} "
            f"(supported: {supported}); the step was skipped",
        )
    instruction = f"Respond in {LANGUAGES[code]} ({code})."
    style_hint = settings.get("style_hint")
    if isinstance(style_hint, str) and style_hint.strip():
        instruction += f" Style: {style_hint.strip()}"
    return LanguagePolicy(instruction=instruction)
