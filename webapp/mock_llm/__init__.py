"""A mock OpenAI-compatible API for development and tests: reply rules (`replies`, pure
functions) behind a thin blueprint (`views`). Independent of the engine and the models."""

from webapp.mock_llm.views import MockLLMRecord, bp

__all__ = ["MockLLMRecord", "bp"]
