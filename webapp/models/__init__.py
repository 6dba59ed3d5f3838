"""Models: the LLM configuration tables and their validation."""

from webapp.models.llm import CAPABILITY_COLUMNS, LLMModel, LLMPreset, LLMProvider
from webapp.models.types import UNREADABLE
from webapp.models.validation import RESERVED_OPTION_KEYS, ValidationError

__all__ = [
    "CAPABILITY_COLUMNS",
    "RESERVED_OPTION_KEYS",
    "UNREADABLE",
    "LLMModel",
    "LLMPreset",
    "LLMProvider",
    "ValidationError",
]
