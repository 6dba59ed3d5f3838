"""Token estimation and the prompt token-budget check (fail fast, before any request)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from webapp.llm.tokenizer import encoding_for


class TokenEstimator(Protocol):
    """Anything that can estimate how many tokens a text costs for a model."""

    def estimate(self, text: str, model_hint: str | None = None) -> int:
        """Return the estimated token count of `text` for the model named by `model_hint`."""
        ...


class TiktokenEstimator:
    """Counts tokens with the tiktoken encoding of the hinted model (cl100k_base by default).

    Stateless apart from the process-wide encoding cache, so one instance is safe to share
    between threads. Special-token strings such as "<|endoftext|>" count as ordinary text.
    """

    def estimate(self, text: str, model_hint: str | None = None) -> int:
        """Return the number of tokens in `text` for the model named by `model_hint`."""
        if not text:
            return 0
        return len(encoding_for(model_hint).encode_ordinary(text))


_DEFAULT_ESTIMATOR = TiktokenEstimator()


def default_estimator() -> TiktokenEstimator:
    """The shared estimator used when a caller does not pass one."""
    return _DEFAULT_ESTIMATOR


@dataclass(frozen=True)
class PromptBudget:
    """The outcome of a token-budget check; the numbers a PROMPT_TOO_LONG error reports.

    `estimated_tokens` is None when the window is unlimited (0): nothing was estimated.
    `max_tokens` is the model's context window.
    """

    estimated_tokens: int | None
    max_tokens: int
    reserve_tokens: int
    limit_tokens: int
    exceeded: bool


def estimate_prompt_tokens(
    messages: Iterable[Mapping[str, Any]],
    *,
    message_overhead_tokens: int = 0,
    estimator: TokenEstimator | None = None,
    model_hint: str | None = None,
) -> int:
    """Estimate a prompt: Σ tokens(message content) + overhead * message count.

    Only text counts: a string content, or the "text" of each part in a list of content parts;
    None, images and message metadata count nothing (tool schemas are not counted either).
    """
    _require_non_negative("message_overhead_tokens", message_overhead_tokens)
    if estimator is None:
        estimator = _DEFAULT_ESTIMATOR
    total = 0
    for message in messages:
        total += message_overhead_tokens
        for text in _message_texts(message):
            total += estimator.estimate(text, model_hint)
    return total


def check_prompt_budget(
    messages: Iterable[Mapping[str, Any]],
    *,
    context_window_tokens: int,
    message_overhead_tokens: int = 0,
    reserve_tokens: int | None = None,
    estimator: TokenEstimator | None = None,
    model_hint: str | None = None,
) -> PromptBudget:
    """Check a prompt against the model's context window before any request is sent.

    A window of 0 means unlimited: never exceeded, and nothing is tokenized. Otherwise the
    limit is max(window - reserve, 0), where reserve is the request's max_tokens (None → 0),
    and the budget is exceeded when `estimate_prompt_tokens` is above the limit.
    Raises ValueError for a negative or non-integer count.
    """
    _require_non_negative("context_window_tokens", context_window_tokens)
    reserve = 0 if reserve_tokens is None else reserve_tokens
    _require_non_negative("reserve_tokens", reserve)
    limit = max(context_window_tokens - reserve, 0)
    if context_window_tokens == 0:
        return PromptBudget(None, 0, reserve, limit, exceeded=False)
    estimated = estimate_prompt_tokens(
        messages,
        message_overhead_tokens=message_overhead_tokens,
        estimator=estimator,
        model_hint=model_hint,
    )
    return PromptBudget(estimated, context_window_tokens, reserve, limit, estimated > limit)


def _require_non_negative(name: str, value: object) -> None:
    # bool is an int subclass, but True tokens is a bug, not a count.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def _message_texts(message: Mapping[str, Any]) -> Iterator[str]:
    content = message.get("content")
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            text = part.get("text") if isinstance(part, Mapping) else None
            if isinstance(text, str):
                yield text
