"""Models: the LLM configuration tables and their validation."""

from webapp.models.chat import ChatMessage, Conversation
from webapp.models.gateway import AppKey
from webapp.models.history import ConfigChange, acting_as
from webapp.models.llm import CAPABILITY_COLUMNS, LLMModel, LLMPreset, LLMProvider
from webapp.models.types import UNREADABLE
from webapp.models.usage import UsageRecord
from webapp.models.users import User
from webapp.models.validation import RESERVED_OPTION_KEYS, ValidationError

__all__ = [
    "CAPABILITY_COLUMNS",
    "RESERVED_OPTION_KEYS",
    "UNREADABLE",
    "AppKey",
    "ChatMessage",
    "ConfigChange",
    "Conversation",
    "LLMModel",
    "LLMPreset",
    "LLMProvider",
    "UsageRecord",
    "User",
    "ValidationError",
    "acting_as",
]
