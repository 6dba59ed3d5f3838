"""The token budget of a conversation's next request: the meter, the check at send, the admin
preview and the reply itself all fit the history here, so what the meter says is what is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from webapp.llm import results as codes
from webapp.llm.results import Result
from webapp.models import Conversation, LLMModel, LLMPreset
from webapp.services.chat import fit_history, preview_prompt_budget, preview_request
from webapp.services.conversations import TurnChoice, history_before


@dataclass(frozen=True)
class FittedHistory:
    """The turns a request sends, and how many earlier ones were left out to fit."""

    turns: list[dict[str, str]]
    left_out_turns: int = 0


def fitted_history(
    llm_model: LLMModel,
    *,
    history: list[dict[str, str]],
    user_text: str,
    system: str | None,
    preset: LLMPreset | None,
    fit: bool,
) -> FittedHistory:
    """The history a request for this message sends: with `fit` (the conversation's
    setting), the oldest whole turns are left out until the prompt fits the model's window.

    The one place a request's history is fitted: the budget meter, the request preview, the
    check at send time and the reply itself all go through here, so what the meter says is
    what is sent. Without `fit`, or when the request breaks another rule (which its own
    checks then report), the history is sent whole.
    """
    if not fit or not history:
        return FittedHistory(history)
    result = fit_history(
        llm_model, user_text=user_text, history=history, system=system, preset=preset
    )
    if not result.success:
        return FittedHistory(history)
    return FittedHistory(result.value["history"], result.value["left_out_turns"])


def _next_request(
    conversation: Conversation | None, choice: TurnChoice
) -> tuple[dict[str, Any], FittedHistory]:
    """The inputs of the request the composer's message would send, its history fitted."""
    history = history_before(conversation.id) if conversation is not None else []
    inputs: dict[str, Any] = {
        "user_text": choice.content,
        "system": choice.system_prompt,
        "preset": choice.preset,
    }
    fit = conversation is None or conversation.fit_history
    fitted = fitted_history(choice.llm_model, history=history, fit=fit, **inputs)
    return {**inputs, "history": fitted.turns}, fitted


def prompt_budget(conversation: Conversation | None, choice: TurnChoice) -> Result:
    """The token budget the next message would meet (see `preview_prompt_budget`), plus
    `left_out_turns` (earlier turns left out to fit) and, when over the limit, `reason`:
    why the message cannot be sent, in words."""
    inputs, fitted = _next_request(conversation, choice)
    result = preview_prompt_budget(choice.llm_model, **inputs)
    if not result.success:
        return result
    value = {**result.value, "left_out_turns": fitted.left_out_turns, "reason": None}
    if result.value["exceeded"]:
        could_fit = conversation is not None and not conversation.fit_history and fitted.turns
        value["reason"] = _too_long_reason(choice.llm_model, value, could_fit=bool(could_fit))
    return Result.ok(**value)


def _too_long_reason(llm_model: LLMModel, budget: dict[str, Any], *, could_fit: bool) -> str:
    """Why a message is refused as too long, with the four numbers of the budget check;
    `could_fit`: leaving earlier turns out (the setting is off) would help."""
    advice = "shorten the message or pick a model with a larger window"
    if could_fit:
        advice = (
            "shorten the message, turn on “Fit long history automatically”, "
            "or pick a model with a larger window"
        )
    return (
        f"Too long for {llm_model.name}: ≈ {budget['estimated_tokens']:,} / "
        f"{budget['limit_tokens']:,} tokens (context window {budget['max_tokens']:,} − "
        f"{budget['reserve_tokens']:,} reserved for the reply) — {advice}."
    )


def refuse_over_budget(conversation: Conversation | None, choice: TurnChoice) -> Result | None:
    """PROMPT_TOO_LONG when the message cannot be sent within the model's window (its
    history fitted first, if the conversation allows it), with the budget's four numbers;
    None when it fits. Checked before anything is stored; the reply checks again."""
    budget = prompt_budget(conversation, choice)
    if not budget.success or not budget.value["exceeded"]:
        return None
    numbers = ("estimated_tokens", "max_tokens", "reserve_tokens", "limit_tokens")
    return Result.failure(
        codes.PROMPT_TOO_LONG,
        budget.value["reason"],
        **{name: budget.value[name] for name in numbers},
    )


def request_preview(conversation: Conversation | None, choice: TurnChoice) -> Result:
    """The exact request the next message would send, nothing sent (see `preview_request`):
    the same inputs as `prompt_budget`, plus `left_out_turns`."""
    inputs, fitted = _next_request(conversation, choice)
    result = preview_request(choice.llm_model, **inputs)
    if not result.success:
        return result
    return Result.ok(**result.value, left_out_turns=fitted.left_out_turns)
