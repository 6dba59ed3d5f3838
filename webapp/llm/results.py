"""The outcome of an engine or service call, and every result code in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MODEL_DISABLED = "MODEL_DISABLED"
PRESET_NOT_FOUND = "PRESET_NOT_FOUND"
EMPTY_PROMPT = "EMPTY_PROMPT"
PROMPT_TOO_LONG = "PROMPT_TOO_LONG"
LLM_REQUEST_FAILED = "LLM_REQUEST_FAILED"
INVALID_INPUT = "INVALID_INPUT"
# The chat page's own outcomes: the server is at its stream limit; the model chosen for a
# reply was deleted before it ran; something broke on our side mid-reply.
BUSY = "BUSY"
MODEL_NOT_FOUND = "MODEL_NOT_FOUND"
INTERNAL_ERROR = "INTERNAL_ERROR"
# A reply cut at its time or size limit (MODELDESK_MAX_REPLY_SECONDS / _CHARS).
REPLY_LIMIT = "REPLY_LIMIT"


@dataclass(frozen=True)
class Result:
    """`success`, a `code` when it failed, human-readable `errors`, and a `value` dict."""

    success: bool
    code: str | None = None
    errors: list[str] = field(default_factory=list)
    value: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def ok(cls, **value: Any) -> Result:
        return cls(success=True, value=value)

    @classmethod
    def failure(cls, code: str, *errors: str, **value: Any) -> Result:
        return cls(success=False, code=code, errors=list(errors), value=value)
