"""A conversation never gets stuck over budget: when its history no longer fits the model's
window, the oldest whole turns are left out of the request (never the system prompt, never
the new message), by one function that the meter, the send check and the reply share; with
the conversation's setting off, the message is refused as PROMPT_TOO_LONG instead."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.factories import make_model, make_preset, make_provider
from tests.support.mock_api import MockAPI, mock_model, mock_provider
from webapp.extensions import db as _db
from webapp.llm import prepare
from webapp.llm.specs import ModelSpec
from webapp.models import ChatMessage, Conversation, LLMModel, User
from webapp.services import conversation_budget, run_chat
from webapp.services import conversations as chats
from webapp.services.chat import fit_history, preview_prompt_budget, preview_request
from webapp.services.llm_config import model_spec

SYSTEM = "Answer in one short paragraph."
QUESTION = "And what about the weather tomorrow?"
# A window that holds the system prompt, the question and about two of these turns.
WINDOW = 200
RESERVE = 20


def turn(number: int) -> list[dict[str, str]]:
    return [
        {"role": "user", "content": f"Question {number}: " + "tell me more " * 8},
        {"role": "assistant", "content": f"Answer {number}: " + "here is more " * 10},
    ]


HISTORY = [message for number in range(6) for message in turn(number)]


@pytest.fixture
def model(app: Flask) -> LLMModel:
    model = make_model(make_provider(), enabled=True, context_window_tokens=WINDOW)
    make_preset(model, llm_options_overrides={"max_tokens": RESERVE})
    return model


@pytest.fixture
def owner(member: Any) -> User:
    return member


def exceeded(model: LLMModel, history: list[dict[str, str]], text: str = QUESTION) -> bool:
    budget = preview_prompt_budget(model, user_text=text, history=history, system=SYSTEM)
    assert budget.success, budget.errors
    return budget.value["exceeded"]


def conversation_of(owner: User, model: LLMModel, turns: int, **attributes: Any) -> Conversation:
    """A conversation with `turns` answered turns (HISTORY's first ones)."""
    conversation = Conversation(user_id=owner.id, title="Long", llm_model_id=model.id, **attributes)
    _db.session.add(conversation)
    _db.session.flush()
    for message in HISTORY[: turns * 2]:
        _db.session.add(ChatMessage(conversation_id=conversation.id, **message))
    _db.session.commit()
    return conversation


def choice_of(model: LLMModel, content: str = QUESTION) -> chats.TurnChoice:
    return chats.TurnChoice(model, None, SYSTEM, content)


# --- the fitting function --------------------------------------------------------------------


def test_a_history_that_fits_is_sent_whole(model: LLMModel) -> None:
    result = fit_history(model, user_text=QUESTION, history=HISTORY[:2], system=SYSTEM)

    assert result.success
    assert result.value == {"history": HISTORY[:2], "left_out_turns": 0}


def test_the_oldest_whole_turns_are_left_out_until_the_prompt_fits(model: LLMModel) -> None:
    assert exceeded(model, HISTORY)

    result = fit_history(model, user_text=QUESTION, history=HISTORY, system=SYSTEM)

    assert result.success, result.errors
    left_out = result.value["left_out_turns"]
    kept = result.value["history"]
    assert 0 < left_out < 6
    # Whole turns, oldest first: what is kept is the newest turns, each question with its answer.
    assert kept == HISTORY[left_out * 2 :]
    assert not exceeded(model, kept)
    # No more than needed: one turn fewer left out would not fit.
    assert exceeded(model, HISTORY[(left_out - 1) * 2 :])


def test_the_system_prompt_and_the_new_message_are_never_left_out(model: LLMModel) -> None:
    result = fit_history(model, user_text=QUESTION, history=HISTORY, system=SYSTEM)

    sent = request_messages(model, result.value["history"])

    assert sent[0] == {"role": "system", "content": SYSTEM}
    assert sent[-1] == {"role": "user", "content": QUESTION}
    assert sent[1:-1] == result.value["history"]


def request_messages(model: LLMModel, history: list[dict[str, str]]) -> list[dict[str, Any]]:
    preview = preview_request(model, user_text=QUESTION, history=history, system=SYSTEM)
    assert preview.success, preview.errors
    return preview.value["body"]["messages"]


def test_when_even_the_message_alone_is_too_long_every_turn_is_left_out(
    model: LLMModel,
) -> None:
    too_long = "This question alone does not fit. " * 40
    assert exceeded(model, [], too_long)

    result = fit_history(model, user_text=too_long, history=HISTORY, system=SYSTEM)

    assert result.value == {"history": [], "left_out_turns": 6}


def test_turns_are_cut_before_each_user_message(app: Flask) -> None:
    # Engine level: a tool exchange stays with its question, and what precedes the first
    # question is a turn of its own.
    history = [
        {"role": "assistant", "content": "Welcome! " * 30},
        {"role": "user", "content": "Look it up. " * 10},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "tool", "content": "result " * 30, "tool_call_id": "1"},
        {"role": "assistant", "content": "Found it."},
        {"role": "user", "content": "Thanks!"},
        {"role": "assistant", "content": "You're welcome."},
    ]
    spec = spec_with_window(60)

    result = prepare.fit_history(spec, user_text="Bye.", history=history)

    assert result.value == {"history": history[5:], "left_out_turns": 2}


def spec_with_window(window: int) -> ModelSpec:
    model = make_model(make_provider(name="Engine"), enabled=True, context_window_tokens=window)
    return model_spec(model)


def test_an_unlimited_window_leaves_nothing_out(model: LLMModel) -> None:
    model.context_window_tokens = 0
    _db.session.commit()

    result = fit_history(model, user_text=QUESTION, history=HISTORY * 50, system=SYSTEM)

    assert result.value["left_out_turns"] == 0


def test_fitting_reports_the_rule_a_request_breaks(model: LLMModel) -> None:
    model.enabled = False
    _db.session.commit()

    assert fit_history(model, user_text=QUESTION, history=HISTORY).code == "MODEL_DISABLED"


# --- the conversation: meter, send check, opt-out ----------------------------------------------


def test_the_meter_counts_the_fitted_request_and_says_how_many_turns_were_left_out(
    model: LLMModel, owner: User
) -> None:
    conversation = conversation_of(owner, model, turns=6)
    fitted = fit_history(model, user_text=QUESTION, history=HISTORY, system=SYSTEM).value

    budget = conversation_budget.prompt_budget(conversation, choice_of(model))

    assert budget.success
    assert budget.value["left_out_turns"] == fitted["left_out_turns"] > 0
    assert budget.value["exceeded"] is False
    expected = preview_prompt_budget(
        model, user_text=QUESTION, history=fitted["history"], system=SYSTEM
    )
    assert budget.value["estimated_tokens"] == expected.value["estimated_tokens"]
    assert conversation_budget.refuse_over_budget(conversation, choice_of(model)) is None
    # The admin's request preview shows the same request.
    preview = conversation_budget.request_preview(conversation, choice_of(model))
    assert preview.value["left_out_turns"] == fitted["left_out_turns"]
    assert preview.value["body"]["messages"][1:-1] == fitted["history"]


def test_a_message_too_long_on_its_own_is_refused_with_the_four_numbers(
    model: LLMModel, owner: User
) -> None:
    conversation = conversation_of(owner, model, turns=6)
    too_long = "This question alone does not fit. " * 40

    refusal = conversation_budget.refuse_over_budget(conversation, choice_of(model, too_long))

    assert refusal is not None and refusal.code == "PROMPT_TOO_LONG"
    engine = run_chat(model, user_text=too_long, history=[], system=SYSTEM)
    assert engine.code == "PROMPT_TOO_LONG"
    numbers = ("estimated_tokens", "limit_tokens", "max_tokens", "reserve_tokens")
    assert {name: refusal.value[name] for name in numbers} == {
        name: engine.value[name] for name in numbers
    }
    assert refusal.value["max_tokens"] == WINDOW
    assert refusal.value["reserve_tokens"] == RESERVE
    [reason] = refusal.errors
    assert reason == (
        f"Too long for {model.name}: ≈ {engine.value['estimated_tokens']} / {WINDOW - RESERVE} "
        f"tokens (context window {WINDOW} − {RESERVE} reserved for the reply) — shorten the "
        "message or pick a model with a larger window."
    )


def test_with_fitting_turned_off_a_long_history_is_refused_as_prompt_too_long(
    model: LLMModel, owner: User
) -> None:
    conversation = conversation_of(owner, model, turns=6)
    chats.set_fit_history(conversation, False)

    budget = conversation_budget.prompt_budget(conversation, choice_of(model))
    refusal = conversation_budget.refuse_over_budget(conversation, choice_of(model))

    assert budget.value["left_out_turns"] == 0
    assert budget.value["exceeded"] is True
    assert refusal is not None and refusal.code == "PROMPT_TOO_LONG"
    # The numbers of the whole history, as the engine refuses it.
    engine = run_chat(model, user_text=QUESTION, history=HISTORY, system=SYSTEM)
    assert engine.code == "PROMPT_TOO_LONG"
    assert refusal.value["estimated_tokens"] == engine.value["estimated_tokens"]
    assert refusal.value["limit_tokens"] == WINDOW - RESERVE
    assert "turn on “Fit long history automatically”" in refusal.errors[0]


def test_a_new_conversation_fits_its_history_by_default(owner: User) -> None:
    conversation = chats.start_conversation(owner.id)

    assert conversation.fit_history is True
    _db.session.expire_all()
    assert _db.session.get(Conversation, conversation.id).fit_history is True


# --- the real request -----------------------------------------------------------------------


def test_the_request_sent_to_the_provider_leaves_the_oldest_turns_out(
    app: Flask, mock_api: MockAPI, member_client: FlaskClient, owner: User
) -> None:
    model = mock_model(mock_provider(mock_api.url), context_window_tokens=WINDOW)
    make_preset(model, llm_options_overrides={"max_tokens": RESERVE})
    conversation = conversation_of(owner, model, turns=6)
    meter = conversation_budget.prompt_budget(conversation, choice_of(model))
    left_out = meter.value["left_out_turns"]
    assert left_out > 0
    data = {"llm_model_id": str(model.id), "system_prompt": SYSTEM, "content": QUESTION}

    sent = member_client.post(f"/c/{conversation.id}/messages", data=data)
    assert sent.status_code == 303, sent.get_data(as_text=True)
    reply_id = _db.session.scalars(
        _db.select(ChatMessage.id).where(ChatMessage.status == "pending")
    ).one()
    stream = member_client.get(f"/messages/{reply_id}/stream")
    assert "event: end" in stream.get_data(as_text=True)

    [body] = mock_api.wire.bodies
    assert body["messages"] == [
        {"role": "system", "content": SYSTEM},
        *HISTORY[left_out * 2 :],
        {"role": "user", "content": QUESTION},
    ]
    _db.session.expire_all()
    assert _db.session.get(ChatMessage, reply_id).status == "complete"
