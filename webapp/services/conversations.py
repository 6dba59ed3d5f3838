"""The chat transcript: conversations, the composer's choices, and turns (the budget of the
next request is in `conversation_budget`).

Sending a message stores a turn: the user's message and an assistant message in status
"pending" that remembers the model, preset and system prompt chosen for it; the `replies`
service then runs and records that reply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import contains_eager

from webapp.extensions import db
from webapp.models import ChatMessage, Conversation, LLMModel, LLMPreset, LLMProvider
from webapp.models.chat import DEFAULT_TITLE
from webapp.models.types import utcnow
from webapp.models.validation import UNSTORABLE_MESSAGE, Errors, is_storable
from webapp.services.presets import default_preset_of, presets_of

TITLE_CHARS = 60
MAX_CONTENT_CHARS = 100_000
MAX_SYSTEM_PROMPT_CHARS = 20_000
SIDEBAR_LIMIT = 200
# Assistant replies whose text the next turn sees: what the user saw, even if cut short.
HISTORY_STATUSES = frozenset({"complete", "stopped", "incomplete"})


# --- conversations -------------------------------------------------------------------------


def list_conversations(user_id: int, limit: int = SIDEBAR_LIMIT) -> list[Conversation]:
    """The user's conversations, most recently active first (one query)."""
    return list(
        db.session.scalars(
            select(Conversation)
            .where(Conversation.user_id == user_id)
            .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
            .limit(limit)
        )
    )


def find_conversation(user_id: int, conversation_id: int) -> Conversation | None:
    """The conversation when it exists and belongs to the user; None otherwise."""
    conversation = db.session.get(Conversation, conversation_id)
    if conversation is None or conversation.user_id != user_id:
        return None
    return conversation


def find_message(user_id: int, message_id: int) -> ChatMessage | None:
    """The message when its conversation belongs to the user; None otherwise."""
    return db.session.scalars(
        select(ChatMessage)
        .join(Conversation, ChatMessage.conversation_id == Conversation.id)
        .where(ChatMessage.id == message_id, Conversation.user_id == user_id)
    ).first()


def transcript(conversation: Conversation) -> list[ChatMessage]:
    """The conversation's messages as shown, oldest first (one query): of the alternative
    replies to a message, only the active one."""
    return list(
        db.session.scalars(
            select(ChatMessage)
            .where(ChatMessage.conversation_id == conversation.id, ChatMessage.is_active)
            .order_by(ChatMessage.id)
        )
    )


def start_conversation(user_id: int) -> Conversation:
    """A new, empty conversation — or the newest one when it has no messages yet, so
    pressing "New chat" twice does not pile up empty conversations."""
    newest = db.session.scalars(
        select(Conversation)
        .where(Conversation.user_id == user_id)
        .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
        .limit(1)
    ).first()
    if newest is not None and not _has_messages(newest.id):
        return newest
    conversation = Conversation(user_id=user_id, title=DEFAULT_TITLE)
    db.session.add(conversation)
    db.session.commit()
    return conversation


def _has_messages(conversation_id: int) -> bool:
    query = select(ChatMessage.id).where(ChatMessage.conversation_id == conversation_id)
    return db.session.execute(query.limit(1)).first() is not None


def rename_conversation(conversation: Conversation, title: str) -> None:
    """Give the conversation a new title (checked by the rename form)."""
    conversation.title = title
    db.session.commit()


def set_fit_history(conversation: Conversation, fit: bool) -> None:
    """Turn the conversation's "fit long history automatically" setting on or off."""
    conversation.fit_history = fit
    db.session.commit()


def delete_conversations(where: ColumnElement[bool]) -> None:
    """Delete the conversations `where` picks and their messages (by the foreign key's
    cascade). One that another request deleted meanwhile (a second tab) is no error."""
    db.session.execute(delete(Conversation).where(where))
    db.session.commit()


def title_from(text: str) -> str:
    """A title from a first message: its first ~60 characters, cut at a word."""
    words = " ".join(text.split())
    if len(words) <= TITLE_CHARS:
        return words or DEFAULT_TITLE
    cut = words[:TITLE_CHARS].rsplit(" ", 1)[0] if " " in words[:TITLE_CHARS] else ""
    return (cut or words[:TITLE_CHARS]).rstrip(" ,.;:") + "…"


# --- the composer: models, presets, validation -----------------------------------------------


def enabled_models() -> list[LLMModel]:
    """Enabled models with their provider loaded, grouped by provider name (one query)."""
    return list(
        db.session.scalars(
            select(LLMModel)
            .join(LLMModel.llm_provider)
            .options(contains_eager(LLMModel.llm_provider))
            .where(LLMModel.enabled.is_(True))
            .order_by(LLMProvider.name, LLMModel.name, LLMModel.id)
        )
    )


# Why a member may not pick a model; admins see the same words as a warning.
NEEDS_API_KEY_REASON = "needs an API key — ask an admin"
FAILED_TEST_REASON = "its last connection test failed"


def unusable_reason(llm_model: LLMModel) -> str | None:
    """Why a send to this model cannot work as it stands, or None when nothing says so.

    A provider has no enabled flag of its own: a "disabled provider" is one whose models are
    all disabled, and a disabled model is never offered at all.
    """
    if llm_model.llm_provider.lacks_api_key:
        return NEEDS_API_KEY_REASON
    if llm_model.connection_failed_at is not None:
        return f"{FAILED_TEST_REASON}: {llm_model.connection_error or 'no reason recorded'}"
    return None


@dataclass(frozen=True)
class PickerChoice:
    """One model in the picker, and whether it can be sent to."""

    llm_model: LLMModel
    reason: str | None

    @property
    def usable(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class PickerGroup:
    """A provider's enabled models, as one optgroup of the picker."""

    llm_provider: LLMProvider
    choices: list[PickerChoice]


def picker_groups(models: list[LLMModel] | None = None) -> list[PickerGroup]:
    """The enabled models grouped by provider (in `enabled_models` order), each marked usable
    or not with the reason."""
    groups: list[PickerGroup] = []
    for llm_model in enabled_models() if models is None else models:
        if not groups or groups[-1].llm_provider.id != llm_model.llm_provider_id:
            groups.append(PickerGroup(llm_model.llm_provider, []))
        groups[-1].choices.append(PickerChoice(llm_model, unusable_reason(llm_model)))
    return groups


@dataclass(frozen=True)
class Draft:
    """What the composer sent. An id is None when the field was left empty; the view turns
    an id that is not a number into 0, which no row has."""

    llm_model_id: int | None = None
    llm_preset_id: int | None = None
    # None: the field was not sent (the conversation's own system prompt is shown).
    system_prompt: str | None = None
    content: str = ""


@dataclass
class Composer:
    """What the message form shows: choices, the selection, the draft and its errors."""

    models: list[LLMModel]
    llm_model_id: int | None
    presets: list[LLMPreset]
    llm_preset_id: int | None
    system_prompt: str = ""
    content: str = ""
    errors: Errors = field(default_factory=dict)
    groups: list[PickerGroup] = field(default_factory=list)

    @property
    def has_default_preset(self) -> bool:
        return any(preset.is_default for preset in self.presets)

    @property
    def selected(self) -> PickerChoice | None:
        """The picked model's entry in the picker."""
        choices = (choice for group in self.groups for choice in group.choices)
        return next((c for c in choices if c.llm_model.id == self.llm_model_id), None)


def composer_for(
    user_id: int,
    conversation: Conversation | None,
    draft: Draft | None = None,
    errors: Errors | None = None,
    *,
    allow_unusable: bool = False,
) -> Composer:
    """The form for a conversation: its remembered model, preset and system prompt, or the
    user's most recent choice; `draft` (a failed submission) wins, so nothing typed is lost.
    A model that cannot be picked (see `choose`) gives way to the first usable one."""
    draft = draft or Draft()
    models = enabled_models()
    groups = picker_groups(models)
    pickable = {
        choice.llm_model.id
        for group in groups
        for choice in group.choices
        if choice.usable or allow_unusable
    }
    remembered = conversation if conversation is not None else _latest_with_model(user_id)
    wanted = draft.llm_model_id
    if wanted is None and remembered is not None:
        wanted = remembered.llm_model_id
    model_id = wanted if wanted in pickable else _first_usable(groups)
    presets = presets_of(model_id)
    preset_ids = {preset.id for preset in presets}
    preset_id = draft.llm_preset_id
    if preset_id is None and remembered is not None and remembered.llm_model_id == model_id:
        preset_id = remembered.llm_preset_id
    if preset_id not in preset_ids:
        preset_id = next((p.id for p in presets if p.is_default), None)
    system = draft.system_prompt
    if system is None:
        system = (conversation.system_prompt if conversation else None) or ""
    return Composer(
        models=models,
        llm_model_id=model_id,
        presets=presets,
        llm_preset_id=preset_id,
        system_prompt=system,
        content=draft.content,
        errors=errors or {},
        groups=groups,
    )


def _first_usable(groups: list[PickerGroup]) -> int | None:
    """The first model that can be sent to; the first of all when none can (admins may)."""
    choices = [choice for group in groups for choice in group.choices]
    usable = next((choice for choice in choices if choice.usable), None)
    pick = usable or (choices[0] if choices else None)
    return pick.llm_model.id if pick else None


def _latest_with_model(user_id: int) -> Conversation | None:
    return db.session.scalars(
        select(Conversation)
        .where(Conversation.user_id == user_id, Conversation.llm_model_id.is_not(None))
        .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
        .limit(1)
    ).first()


@dataclass(frozen=True)
class TurnChoice:
    """A validated submission: the model, preset and system prompt for one reply."""

    llm_model: LLMModel
    preset: LLMPreset | None
    system_prompt: str | None
    content: str


def choose(
    draft: Draft, *, require_content: bool = True, allow_unusable: bool = False
) -> tuple[TurnChoice | None, Errors]:
    """Check a draft: the model exists, is enabled and usable (`allow_unusable`: admins may
    send to a model marked unusable, to see for themselves), the preset is one of its own,
    the texts fit. Returns the choice, or None and readable errors per field."""
    errors: Errors = {}
    llm_model = _chosen_model(draft.llm_model_id, errors, allow_unusable)
    preset = _chosen_preset(llm_model, draft.llm_preset_id, errors) if llm_model else None
    system = draft.system_prompt or ""
    if not is_storable(system):
        errors["system_prompt"] = [f"The system prompt {UNSTORABLE_MESSAGE}."]
    elif len(system) > MAX_SYSTEM_PROMPT_CHARS:
        errors["system_prompt"] = [
            f"The system prompt is too long ({len(system)} characters; "
            f"at most {MAX_SYSTEM_PROMPT_CHARS})."
        ]
    content = draft.content
    if not is_storable(content):
        errors["content"] = [f"The message {UNSTORABLE_MESSAGE}."]
    elif require_content and not content.strip():
        errors["content"] = ["Type a message first."]
    elif len(content) > MAX_CONTENT_CHARS:
        errors["content"] = [
            f"The message is too long ({len(content)} characters; at most {MAX_CONTENT_CHARS})."
        ]
    if errors or llm_model is None:
        return None, errors
    return TurnChoice(llm_model, preset, system if system.strip() else None, content), errors


def _chosen_model(model_id: int | None, errors: Errors, allow_unusable: bool) -> LLMModel | None:
    llm_model = db.session.get(LLMModel, model_id) if model_id else None
    if llm_model is None:
        errors["llm_model_id"] = ["Choose a model."]
        return None
    if not llm_model.enabled:
        errors["llm_model_id"] = [f"{llm_model.name} is disabled: choose another model."]
        return None
    reason = unusable_reason(llm_model)
    if reason is not None and not allow_unusable:
        errors["llm_model_id"] = [f"{llm_model.name}: {reason}."]
        return None
    return llm_model


def _chosen_preset(llm_model: LLMModel, preset_id: int | None, errors: Errors) -> LLMPreset | None:
    if preset_id is None:
        return None  # the model's default preset when it has one (the engine's rule)
    preset = db.session.get(LLMPreset, preset_id) if preset_id else None
    if preset is None or preset.llm_model_id != llm_model.id:
        errors["llm_preset_id"] = [f"Choose one of the presets of {llm_model.name}."]
        return None
    return preset


# --- turns ---------------------------------------------------------------------------------


def add_turn(conversation: Conversation, choice: TurnChoice) -> tuple[ChatMessage, ChatMessage]:
    """Store the user's message and a pending assistant message; remember the selection.

    The first message also names a conversation that still has the default title.
    """
    preset = choice.preset or default_preset_of(choice.llm_model.id)
    user_message = ChatMessage(
        conversation_id=conversation.id, role="user", content=choice.content, status="complete"
    )
    reply = ChatMessage(
        conversation_id=conversation.id,
        role="assistant",
        status="pending",
        llm_model_id=choice.llm_model.id,
        llm_preset_id=preset.id if preset else None,
        model_name=choice.llm_model.name,
        preset_name=preset.name if preset else None,
        details={"system_prompt": choice.system_prompt},
    )
    if conversation.title == DEFAULT_TITLE and not _has_messages(conversation.id):
        conversation.title = title_from(choice.content)
    conversation.llm_model_id = choice.llm_model.id
    conversation.llm_preset_id = preset.id if preset else None
    conversation.system_prompt = choice.system_prompt
    conversation.updated_at = utcnow()
    db.session.add(user_message)
    db.session.flush()
    reply.reply_to_id = user_message.id
    db.session.add(reply)
    db.session.commit()
    return user_message, reply


def history_before(conversation_id: int, message_id: int | None = None) -> list[dict[str, str]]:
    """The turns before a message, as role/content dicts for the next request.

    A turn counts when its reply has text the user saw (complete, or stopped / incomplete
    part-way); a turn whose reply failed or is still being written is left out, so the
    model never sees a question twice or a half-made turn.
    """
    return turns_before(conversation_id, message_id)[0]


class EarlierMessage(NamedTuple):
    """A message of a conversation, as far as the next request's history needs it."""

    role: str
    content: str
    status: str


def turns_before(
    conversation_id: int, message_id: int | None
) -> tuple[list[dict[str, str]], str | None]:
    """`history_before`, and the question still waiting for its reply (one query). Of the
    alternative replies to a message, only the active one counts."""
    query = select(ChatMessage.role, ChatMessage.content, ChatMessage.status).where(
        ChatMessage.conversation_id == conversation_id, ChatMessage.is_active
    )
    if message_id is not None:
        query = query.where(ChatMessage.id < message_id)
    rows = db.session.execute(query.order_by(ChatMessage.id))
    return turns_of([EarlierMessage(*row) for row in rows])


def turns_of(messages: list[EarlierMessage]) -> tuple[list[dict[str, str]], str | None]:
    """The history that active messages (in order) make, and the question still waiting for
    its reply (see `history_before`)."""
    history: list[dict[str, str]] = []
    question: str | None = None
    for role, content, status in messages:
        if role == "user":
            question = content
        elif question is not None:
            if status in HISTORY_STATUSES and content:
                history += [
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": content},
                ]
            question = None
    return history, question
