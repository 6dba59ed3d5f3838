"""The last turn as a service: alternative replies, the history they give, editing the last
question, continuing a cut reply (its request, and its text recorded after the cut one's)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from tests.support.factories import make_model, make_preset, make_provider
from tests.support.mock_api import (
    MockAPI,
    mock_model,
    mock_provider,
    mock_reply_body,
)
from tests.support.users import session_of
from webapp.extensions import db as _db
from webapp.models import ChatMessage, Conversation, LLMModel
from webapp.services import alternatives, replies, reply_states, transcript_export
from webapp.services import conversations as chats
from webapp.services.alternatives import CONTINUE_INSTRUCTION, TurnConflict
from webapp.services.reply_recorder import ReplyRecorder


@pytest.fixture
def model(app: Flask) -> LLMModel:
    model = make_model(make_provider(name="Acme"), model="acme-1", name="Acme One", enabled=True)
    make_preset(model, key="default", name="Balanced")
    return model


@pytest.fixture
def conversation(member: Any) -> Conversation:
    return chats.start_conversation(member.id)


def choice_of(model: LLMModel, content: str = "", system: str | None = None) -> chats.TurnChoice:
    choice, errors = chats.choose(
        chats.Draft(llm_model_id=model.id, content=content, system_prompt=system),
        require_content=bool(content),
    )
    assert choice is not None, errors
    return choice


def answered(
    conversation: Conversation, model: LLMModel, question: str, answer: str, **values: Any
) -> ChatMessage:
    """A turn whose reply ended with `answer` (complete unless `values` say otherwise)."""
    _, reply = chats.add_turn(conversation, choice_of(model, question))
    finish(reply, answer, **values)
    return reply


def finish(reply: ChatMessage, text: str, status: str = "complete", **values: Any) -> None:
    reply.status, reply.content = status, text
    for name, value in values.items():
        setattr(reply, name, value)
    _db.session.commit()


def test_a_turn_knows_the_question_its_reply_answers(
    conversation: Conversation, model: LLMModel
) -> None:
    question, reply = chats.add_turn(conversation, choice_of(model, "Why?"))

    assert reply.reply_to_id == question.id
    assert reply.is_active and question.is_active


def test_regenerate_keeps_the_old_reply_and_the_history_uses_the_shown_one(
    conversation: Conversation, model: LLMModel
) -> None:
    first = answered(conversation, model, "Capital of France?", "Paris.")

    second = alternatives.regenerate(first, choice_of(model))
    finish(second, "It is Paris.")

    assert second.reply_to_id == first.reply_to_id and second.status == "complete"
    _db.session.refresh(first)
    assert not first.is_active and second.is_active
    assert [m.content for m in chats.transcript(conversation)] == [
        "Capital of France?",
        "It is Paris.",
    ]
    assert chats.history_before(conversation.id)[-1]["content"] == "It is Paris."

    alternatives.activate(first)

    assert [m.content for m in chats.transcript(conversation)][-1] == "Paris."
    assert chats.history_before(conversation.id) == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ]
    actions = alternatives.reply_actions(first, allow_unusable=False)
    assert actions is not None
    assert (actions.position, actions.count) == (1, 2)
    assert (actions.previous_id, actions.next_id) == (None, second.id)


def test_regenerate_with_another_model_and_preset_keeps_the_system_prompt(
    conversation: Conversation, model: LLMModel
) -> None:
    _, reply = chats.add_turn(conversation, choice_of(model, "Hi", system="Be terse."))
    finish(reply, "Hello.")
    other = make_model(make_provider(name="Other"), model="o-1", name="Other One", enabled=True)
    preset = make_preset(other, key="warm", name="Warm")
    choice, errors = chats.choose(
        chats.Draft(llm_model_id=other.id, llm_preset_id=preset.id, system_prompt="Be terse."),
        require_content=False,
    )
    assert choice is not None, errors

    new_reply = alternatives.regenerate(reply, choice)

    assert (new_reply.model_name, new_reply.preset_name) == ("Other One", "Warm")
    assert new_reply.status == "pending"
    assert new_reply.details["system_prompt"] == "Be terse."


def test_only_the_last_turn_changes_and_never_while_a_reply_is_written(
    conversation: Conversation, model: LLMModel
) -> None:
    older = answered(conversation, model, "One?", "One.")
    last = answered(conversation, model, "Two?", "Two.")

    with pytest.raises(TurnConflict, match="Only the last message"):
        alternatives.regenerate(older, choice_of(model))
    with pytest.raises(TurnConflict, match="Only the last message"):
        alternatives.activate(older)
    question = _db.session.get(ChatMessage, older.reply_to_id)
    with pytest.raises(TurnConflict, match="Only the last message"):
        alternatives.edit_question(question, choice_of(model, "One again?"))
    assert alternatives.reply_actions(older, allow_unusable=False) is None

    alternatives.regenerate(last, choice_of(model))  # pending now
    with pytest.raises(TurnConflict, match="still being written"):
        alternatives.regenerate(last, choice_of(model))
    with pytest.raises(TurnConflict, match="still being written"):
        alternatives.activate(last)


def test_editing_the_last_question_drops_its_replies_and_asks_again(
    conversation: Conversation, model: LLMModel
) -> None:
    answered(conversation, model, "One?", "One.")
    reply = answered(conversation, model, "Tow?", "Two?")
    finish(alternatives.regenerate(reply, choice_of(model)), "2")  # two answers now
    question = _db.session.get(ChatMessage, reply.reply_to_id)

    new_reply = alternatives.edit_question(question, choice_of(model, "Two?"))

    answers = _db.session.scalars(
        _db.select(ChatMessage).where(ChatMessage.reply_to_id == question.id)
    ).all()
    assert answers == [new_reply] and new_reply.status == "pending"
    assert [m.content for m in chats.transcript(conversation)] == ["One?", "One.", "Two?", ""]
    history, waiting = chats.turns_before(conversation.id, new_reply.id)
    assert waiting == "Two?"
    assert history == [
        {"role": "user", "content": "One?"},
        {"role": "assistant", "content": "One."},
    ]


def test_a_reply_can_be_continued_when_it_ended_before_its_end(
    conversation: Conversation, model: LLMModel
) -> None:
    reply = answered(conversation, model, "Count", "1, 2", status="stopped")
    assert alternatives.can_continue(reply)
    for status, details in [("incomplete", {}), ("complete", {"finish_reason": "length"})]:
        finish(reply, "1, 2", status=status, details=details)
        assert alternatives.can_continue(reply)
    finish(reply, "1, 2, 3.", status="complete", details={"finish_reason": "stop"})
    assert not alternatives.can_continue(reply)
    with pytest.raises(TurnConflict, match="stopped or cut short"):
        alternatives.continue_reply(reply, choice_of(model))
    finish(reply, "", status="stopped")
    assert not alternatives.can_continue(reply)


def test_a_continuation_asks_with_the_cut_text_then_an_instruction(
    conversation: Conversation, model: LLMModel
) -> None:
    answered(conversation, model, "One?", "One.")
    reply = answered(conversation, model, "Count to five", "1, 2, ", status="stopped")

    continued = alternatives.continue_reply(reply, choice_of(model))

    assert continued.content == "1, 2, " and continued.details["continues"] == reply.id
    assert continued.is_active and not _db.session.get(ChatMessage, reply.id).is_active
    prompt = alternatives.reply_prompt(continued)
    assert prompt.prefix == "1, 2, "
    assert prompt.user_text == CONTINUE_INSTRUCTION
    assert prompt.history == [
        {"role": "user", "content": "One?"},
        {"role": "assistant", "content": "One."},
        {"role": "user", "content": "Count to five"},
        {"role": "assistant", "content": "1, 2, "},
    ]
    # An ordinary reply is asked its question.
    finish(continued, "1, 2, 3, 4, 5.")
    regenerated = alternatives.regenerate(continued, choice_of(model))
    assert regenerated.content == ""
    assert alternatives.reply_prompt(regenerated).user_text == "Count to five"


def test_a_failed_continuation_keeps_the_text_it_continued(
    conversation: Conversation, model: LLMModel
) -> None:
    reply = answered(conversation, model, "Tell me a story", "Once upon ", status="stopped")
    continued = alternatives.continue_reply(reply, choice_of(model))
    assert reply_states.claim_own(continued.id, session_of(conversation.user_id)) is not None
    recorder = ReplyRecorder(
        _db.engine, continued.id, model_name="Acme One", preset_name=None, prefix="Once upon "
    )
    assert recorder.length == 0  # the reply limits count only the new text

    saved = recorder.fail("the server broke")

    assert (saved.status, saved.content) == ("incomplete", "Once upon ")
    # Still a turn the next question sees.
    assert chats.history_before(conversation.id)[-1]["content"] == "Once upon "


def test_a_continuation_streams_after_the_cut_text(
    app: Flask, mock_api: MockAPI, member: Any
) -> None:
    model = mock_model(mock_provider(mock_api.url))
    conversation = chats.start_conversation(member.id)
    reply = answered(conversation, model, "Tell me a story", "Once upon ", status="stopped")
    continued = alternatives.continue_reply(reply, choice_of(model))
    continued_id = continued.id
    claimed = reply_states.claim_own(continued_id, session_of(member.id))
    assert claimed is not None and claimed.content == "Once upon "

    events, recorder = replies._start(claimed, member.id)
    received = list(events)
    new_text = "".join(event.content for event in received if event.type == "delta")
    for event in received[:-1]:
        recorder.add(event.content)
    recorder.finish(received[-1])

    [body] = mock_api.wire.bodies
    assert body["messages"] == [
        {"role": "user", "content": "Tell me a story"},
        {"role": "assistant", "content": "Once upon "},
        {"role": "user", "content": CONTINUE_INSTRUCTION},
    ]
    assert new_text.startswith(mock_reply_body(CONTINUE_INSTRUCTION))
    _db.session.expire_all()
    saved = _db.session.get(ChatMessage, continued_id)
    assert saved is not None and saved.status == "complete"
    assert saved.content == "Once upon " + new_text


def test_exports_hold_only_the_shown_replies(conversation: Conversation, model: LLMModel) -> None:
    reply = answered(conversation, model, "Capital?", "Lyon.")
    finish(alternatives.regenerate(reply, choice_of(model)), "Paris.")

    markdown = transcript_export.as_markdown(conversation, chats.transcript(conversation))
    document = transcript_export.as_json(conversation, chats.transcript(conversation))

    assert "Paris." in markdown and "Lyon." not in markdown
    assert [m["content"] for m in document["messages"]] == ["Capital?", "Paris."]


def test_the_claim_returns_the_history_the_conversation_gives(
    conversation: Conversation, model: LLMModel
) -> None:
    """The claim that starts a reply returns the messages before it (one statement, on the
    stream's path); they make exactly the history the transcript query makes — alternatives
    not shown, failed turns and the quotes and newlines of the text included."""
    answered(conversation, model, 'Say "hi"', "hi\nthere")
    answered(conversation, model, "Fail?", "", status="error", error_code="LLM_REQUEST_FAILED")
    shown = answered(conversation, model, "Cut?", "Half", status="stopped")
    finish(alternatives.regenerate(shown, choice_of(model)), "Whole ✓")
    _, pending = chats.add_turn(conversation, choice_of(model, "And now?"))

    claimed = reply_states.claim_own(pending.id, session_of(conversation.user_id))

    assert claimed is not None
    assert chats.turns_of(claimed.earlier) == chats.turns_before(conversation.id, pending.id)
    history, question = chats.turns_of(claimed.earlier)
    assert question == "And now?"
    assert [turn["content"] for turn in history] == ['Say "hi"', "hi\nthere", "Cut?", "Whole ✓"]


def test_the_claim_of_a_first_reply_returns_only_its_question(
    conversation: Conversation, model: LLMModel
) -> None:
    _, pending = chats.add_turn(conversation, choice_of(model, "First?"))

    claimed = reply_states.claim_own(pending.id, session_of(conversation.user_id))

    assert claimed is not None
    assert chats.turns_of(claimed.earlier) == ([], "First?")
