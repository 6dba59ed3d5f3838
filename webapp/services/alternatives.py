"""Alternative replies: regenerate the last reply, edit the last question, continue a cut reply.

Every assistant message answers one user message (`reply_to_id`). Regenerating or continuing
the last reply adds another answer to the same question, an alternative; one answer per
question is active (`is_active`): the page shows it and the next turn's history uses it
(`conversations.turns_before`). Editing the last question drops its answers (they answered
another question) and asks again.

Each action stores a new assistant message in status "pending", as sending does, so the page
streams it the same way; `reply_prompt` says what its request holds. Only the last turn can be
changed, and only while none of the conversation's replies is being written: anything else
raises `TurnConflict` with a sentence for the reader.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import case, func, select, update

from webapp.extensions import db
from webapp.models import ChatMessage, Conversation, LLMPreset
from webapp.models.types import utcnow
from webapp.services.conversations import (
    EarlierMessage,
    TurnChoice,
    picker_groups,
    turns_before,
    turns_of,
)
from webapp.services.presets import default_preset_of

# Asked after the cut reply, so any chat model carries on; see `reply_prompt`.
CONTINUE_INSTRUCTION = "Continue exactly where you stopped."
WRITING_TEXT = "A reply is still being written: wait for it to finish, or stop it, and try again."
NOT_LAST_TEXT = "Only the last message of a conversation can be {action}."
NO_QUESTION_TEXT = "This reply answers no message, so it cannot be {action}."
NOT_CUT_TEXT = "Only a reply that was stopped or cut short can be continued."
# Replies still being written; while one is, the last turn stays as it is.
IN_PROGRESS = ("pending", "streaming")


class TurnConflict(Exception):
    """The turn cannot be changed now (not the last one, or a reply is being written)."""


# --- what the last turn offers -------------------------------------------------------------


@dataclass(frozen=True)
class PickOption:
    """A model and preset to regenerate with, as one option of the picker."""

    value: str
    label: str
    usable: bool
    reason: str | None
    selected: bool


@dataclass(frozen=True)
class PickGroup:
    provider_name: str
    options: list[PickOption]


@dataclass(frozen=True)
class ReplyActions:
    """What the shown reply of the last turn offers: flipping between its alternatives
    (`position` of `count`, 1-based), regenerating (with the picker's `groups`), continuing."""

    reply: ChatMessage
    position: int
    count: int
    previous_id: int | None
    next_id: int | None
    can_continue: bool
    groups: list[PickGroup]


def can_continue(message: ChatMessage) -> bool:
    """A reply with text that ended before its end: stopped, cut by a limit or an error
    (incomplete), or at the preset's max_tokens."""
    if message.role != "assistant" or not message.content:
        return False
    finish_reason = (message.details or {}).get("finish_reason")
    return message.status in ("stopped", "incomplete") or (
        message.status == "complete" and finish_reason == "length"
    )


def reply_actions(reply: ChatMessage, *, allow_unusable: bool) -> ReplyActions | None:
    """The actions of `reply` when it is the shown, finished answer of the conversation's
    last question; None otherwise (an older turn offers none)."""
    if (
        reply.role != "assistant"
        or not reply.is_active
        or reply.reply_to_id is None
        or reply.status in IN_PROGRESS
        or reply.reply_to_id != _last_question_id(reply.conversation_id)
    ):
        return None
    ids = [message.id for message in alternatives_of(reply)]
    place = ids.index(reply.id)
    return ReplyActions(
        reply=reply,
        position=place + 1,
        count=len(ids),
        previous_id=ids[place - 1] if place > 0 else None,
        next_id=ids[place + 1] if place + 1 < len(ids) else None,
        can_continue=can_continue(reply),
        groups=regenerate_choices(reply, allow_unusable=allow_unusable),
    )


def last_turn(messages: list[ChatMessage]) -> tuple[ChatMessage | None, ChatMessage | None]:
    """Of the messages shown (oldest first): the last question and its shown reply, if any."""
    question = next((m for m in reversed(messages) if m.role == "user"), None)
    if question is None:
        return None, None
    reply = next(
        (m for m in reversed(messages) if m.role == "assistant" and m.reply_to_id == question.id),
        None,
    )
    return question, reply


def shown_answer(question: ChatMessage) -> ChatMessage | None:
    """The active answer to `question`, if it has one."""
    return db.session.scalars(
        select(ChatMessage).where(ChatMessage.reply_to_id == question.id, ChatMessage.is_active)
    ).first()


def alternatives_of(reply: ChatMessage) -> list[ChatMessage]:
    """The answers to the question `reply` answers, oldest first (`reply` alone if none)."""
    if reply.reply_to_id is None:
        return [reply]
    return list(
        db.session.scalars(
            select(ChatMessage)
            .where(ChatMessage.reply_to_id == reply.reply_to_id)
            .order_by(ChatMessage.id)
        )
    )


def regenerate_choices(reply: ChatMessage, *, allow_unusable: bool) -> list[PickGroup]:
    """The enabled models, each with its presets, as "model · preset" options (two queries);
    the reply's own model and preset selected. Members cannot pick an unusable model."""
    groups = picker_groups()
    model_ids = [choice.llm_model.id for group in groups for choice in group.choices]
    presets: dict[int, list[LLMPreset]] = defaultdict(list)
    for preset in db.session.scalars(
        select(LLMPreset)
        .where(LLMPreset.llm_model_id.in_(model_ids))
        .order_by(case((LLMPreset.is_default, 0), else_=1), func.lower(LLMPreset.name))
    ):
        presets[preset.llm_model_id].append(preset)
    picked = (reply.llm_model_id, reply.llm_preset_id)
    result = []
    for group in groups:
        options = []
        for choice in group.choices:
            model = choice.llm_model
            usable = choice.usable or allow_unusable
            pairs: list[tuple[int | None, str]] = [
                (preset.id, f"{model.name} · {preset.name}") for preset in presets[model.id]
            ] or [(None, model.name)]
            options += [
                PickOption(
                    value=f"{model.id}:{preset_id or ''}",
                    label=label,
                    usable=usable,
                    reason=choice.reason,
                    selected=(model.id, preset_id) == picked,
                )
                for preset_id, label in pairs
            ]
        result.append(PickGroup(group.llm_provider.name, options))
    return result


# --- changing the last turn ----------------------------------------------------------------


def regenerate(reply: ChatMessage, choice: TurnChoice) -> ChatMessage:
    """A new answer to the question `reply` answers, with `choice`'s model and preset; it
    becomes the active one, the others are kept as alternatives."""
    _check_last_turn(reply, "regenerated")
    new_reply = _pending_answer(reply.conversation_id, reply.reply_to_id, choice)
    _add_active(new_reply)
    db.session.commit()
    return new_reply


def edit_question(question: ChatMessage, choice: TurnChoice) -> ChatMessage:
    """The last question gets `choice.content` and a new answer from `choice`'s model and
    preset; its earlier answers are dropped (they answered a different question)."""
    if question.role != "user":
        raise TurnConflict("Only your own messages can be edited.")
    _check_unlocked(question.conversation_id, question.id, "edited")
    dropped = list(
        db.session.scalars(select(ChatMessage).where(ChatMessage.reply_to_id == question.id))
    )
    question.content = choice.content
    new_reply = _pending_answer(question.conversation_id, question.id, choice)
    # Added before the old answers go, so it never takes the id of one (SQLite reuses the
    # highest id once its row is gone): the page removes the old answer by its id.
    _add_active(new_reply)
    for answer in dropped:
        db.session.delete(answer)
    db.session.commit()
    return new_reply


def continue_reply(reply: ChatMessage, choice: TurnChoice) -> ChatMessage:
    """A new answer that carries on from where `reply` ended: it starts with `reply`'s text
    (the stream appends after it) and replaces `reply` as the active alternative."""
    _check_last_turn(reply, "continued")
    if not can_continue(reply):
        raise TurnConflict(NOT_CUT_TEXT)
    new_reply = _pending_answer(reply.conversation_id, reply.reply_to_id, choice)
    new_reply.content = reply.content
    new_reply.details = {**new_reply.details, "continues": reply.id}
    _add_active(new_reply)
    db.session.commit()
    return new_reply


def activate(reply: ChatMessage) -> None:
    """Show `reply` instead of its alternatives; the next turn's history uses it."""
    _check_last_turn(reply, "changed")
    _deactivate_answers(reply.reply_to_id)
    reply.is_active = True
    db.session.commit()


def _check_last_turn(reply: ChatMessage, action: str) -> None:
    if reply.role != "assistant" or reply.reply_to_id is None:
        raise TurnConflict(NO_QUESTION_TEXT.format(action=action))
    _check_unlocked(reply.conversation_id, reply.reply_to_id, action)


def _check_unlocked(conversation_id: int, question_id: int, action: str) -> None:
    if question_id != _last_question_id(conversation_id):
        raise TurnConflict(NOT_LAST_TEXT.format(action=action))
    writing = select(ChatMessage.id).where(
        ChatMessage.conversation_id == conversation_id, ChatMessage.status.in_(IN_PROGRESS)
    )
    if db.session.execute(writing.limit(1)).first() is not None:
        raise TurnConflict(WRITING_TEXT)


def _last_question_id(conversation_id: int) -> int | None:
    return db.session.scalar(
        select(func.max(ChatMessage.id)).where(
            ChatMessage.conversation_id == conversation_id, ChatMessage.role == "user"
        )
    )


def _pending_answer(
    conversation_id: int, question_id: int | None, choice: TurnChoice
) -> ChatMessage:
    preset = choice.preset or default_preset_of(choice.llm_model.id)
    return ChatMessage(
        conversation_id=conversation_id,
        role="assistant",
        status="pending",
        reply_to_id=question_id,
        llm_model_id=choice.llm_model.id,
        llm_preset_id=preset.id if preset else None,
        model_name=choice.llm_model.name,
        preset_name=preset.name if preset else None,
        details={"system_prompt": choice.system_prompt},
    )


def _add_active(new_reply: ChatMessage) -> ChatMessage:
    """`new_reply` as the shown answer to its question (flushed; the caller commits)."""
    _deactivate_answers(new_reply.reply_to_id)
    new_reply.is_active = True
    db.session.add(new_reply)
    conversation = db.session.get(Conversation, new_reply.conversation_id)
    if conversation is not None:
        conversation.updated_at = utcnow()
    db.session.flush()
    return new_reply


def _deactivate_answers(question_id: int | None) -> None:
    db.session.execute(
        update(ChatMessage)
        .where(ChatMessage.reply_to_id == question_id)
        .values(is_active=False, updated_at=utcnow()),
        execution_options={"synchronize_session": "fetch"},
    )


# --- the request of a reply ----------------------------------------------------------------


class ReplyToRun(Protocol):
    """What a reply's request is built from (a message, or the claim that started it)."""

    id: int
    conversation_id: int
    content: str
    details: dict[str, Any]


@dataclass(frozen=True)
class ReplyPrompt:
    """What a pending reply is asked with: the turns before it and the user's text; for a
    continuation, `prefix` is the text it carries on from (kept in front of the new text)."""

    history: list[dict[str, str]]
    user_text: str
    prefix: str = ""


def reply_prompt(message: ReplyToRun, earlier: list[EarlierMessage] | None = None) -> ReplyPrompt:
    """The request of the reply `message` (just claimed): the active history before it and its
    question, from the `earlier` messages when the caller has them (the claim returns them),
    else read now. A continuation adds the question and the cut text as a finished exchange,
    then asks to carry on (`CONTINUE_INSTRUCTION`): a trailing assistant message is continued
    by few OpenAI-compatible servers, while an instruction works with any chat model."""
    turns, question = (
        turns_of(earlier)
        if earlier is not None
        else turns_before(message.conversation_id, message.id)
    )
    details: dict[str, Any] = message.details or {}
    if details.get("continues") is None or not message.content:
        return ReplyPrompt(turns, question or "")
    history = [
        *turns,
        {"role": "user", "content": question or ""},
        {"role": "assistant", "content": message.content},
    ]
    return ReplyPrompt(history, CONTINUE_INSTRUCTION, prefix=message.content)
