"""The chat transcript: conversations, turns, and the life of one assistant reply.

Sending a message stores a turn: the user's message and an assistant message in status
"pending" that remembers the model, preset and system prompt chosen for it. One stream
request then claims the pending message (pending → streaming, a single conditional UPDATE,
so a reconnecting browser can never run the model twice), and a `ReplyRecorder` writes the
outcome through its own database session — complete, error, stopped (the browser went
away), or incomplete (the stream ended early) — so the reply is saved whatever happens to
the request that streamed it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, contains_eager, joinedload

from webapp.extensions import db
from webapp.models import ChatMessage, Conversation, LLMModel, LLMPreset, LLMProvider
from webapp.models.chat import DEFAULT_TITLE
from webapp.models.types import utcnow
from webapp.models.validation import Errors
from webapp.services import result as codes
from webapp.services.chat import (
    StreamEvent,
    prepare_chat,
    preview_prompt_budget,
    send_chat,
    stream_chat,
)
from webapp.services.result import Result

TITLE_CHARS = 60
MAX_TITLE_CHARS = 200
MAX_CONTENT_CHARS = 100_000
MAX_SYSTEM_PROMPT_CHARS = 20_000
SIDEBAR_LIMIT = 200
# Ids come from URLs and forms: anything past a 32-bit integer cannot be a row (and would
# make PostgreSQL raise instead of finding nothing).
MAX_ID = 2**31 - 1
CHECKPOINT_SECONDS = 1.0
FINAL_STATUSES = frozenset({"complete", "error", "stopped", "incomplete"})
# Assistant replies whose text the next turn sees: what the user saw, even if cut short.
HISTORY_STATUSES = frozenset({"complete", "stopped", "incomplete"})
MODEL_NOT_FOUND = "MODEL_NOT_FOUND"
INTERNAL_ERROR = "INTERNAL_ERROR"


def storable(text: str) -> str:
    """Text every database can store: NUL is the one character PostgreSQL refuses."""
    return text.replace("\x00", "\ufffd")


def parse_id(value: object) -> int | None:
    """A row id from a URL or form value; None for anything else (text, 0, too large)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())
    else:
        return None
    return number if 0 < number <= MAX_ID else None


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


def find_conversation(user_id: int, conversation_id: object) -> Conversation | None:
    """The conversation when it exists and belongs to the user; None otherwise."""
    found_id = parse_id(conversation_id)
    if found_id is None:
        return None
    conversation = db.session.get(Conversation, found_id)
    if conversation is None or conversation.user_id != user_id:
        return None
    return conversation


def find_message(user_id: int, message_id: object) -> ChatMessage | None:
    """The message when its conversation belongs to the user; None otherwise."""
    found_id = parse_id(message_id)
    if found_id is None:
        return None
    return db.session.scalars(
        select(ChatMessage)
        .join(Conversation, ChatMessage.conversation_id == Conversation.id)
        .where(ChatMessage.id == found_id, Conversation.user_id == user_id)
    ).first()


def transcript(conversation: Conversation) -> list[ChatMessage]:
    """The conversation's messages, oldest first (one query)."""
    return list(
        db.session.scalars(
            select(ChatMessage)
            .where(ChatMessage.conversation_id == conversation.id)
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


def rename_conversation(conversation: Conversation, title: object) -> Errors:
    """Set the title; returns errors per field (empty when saved)."""
    text = " ".join(storable(title).split()) if isinstance(title, str) else ""
    if not text:
        return {"title": ["can't be blank"]}
    if len(text) > MAX_TITLE_CHARS:
        return {"title": [f"is too long (at most {MAX_TITLE_CHARS} characters)"]}
    conversation.title = text
    db.session.commit()
    return {}


def delete_conversation(conversation: Conversation) -> None:
    """Delete the conversation and its messages."""
    db.session.delete(conversation)
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


def model_presets(llm_model_id: int | None) -> list[LLMPreset]:
    """A model's presets, the "default" one first, then by name (one query)."""
    if llm_model_id is None:
        return []
    presets = db.session.scalars(
        select(LLMPreset)
        .where(LLMPreset.llm_model_id == llm_model_id)
        .order_by(LLMPreset.name, LLMPreset.id)
    )
    return sorted(presets, key=lambda preset: not preset.is_default)


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

    @property
    def has_default_preset(self) -> bool:
        return any(preset.is_default for preset in self.presets)


def composer_for(
    user_id: int,
    conversation: Conversation | None,
    form: Mapping[str, Any] | None = None,
    errors: Errors | None = None,
) -> Composer:
    """The form for a conversation: its remembered model, preset and system prompt, or the
    user's most recent choice; `form` (a failed submission) wins, so nothing typed is lost."""
    models = enabled_models()
    enabled_ids = {model.id for model in models}
    remembered = conversation if conversation is not None else _latest_with_model(user_id)
    wanted = parse_id(form.get("llm_model_id")) if form else None
    if wanted is None and remembered is not None:
        wanted = remembered.llm_model_id
    model_id = wanted if wanted in enabled_ids else (models[0].id if models else None)
    presets = model_presets(model_id)
    preset_ids = {preset.id for preset in presets}
    preset_id = parse_id(form.get("llm_preset_id")) if form else None
    if preset_id is None and remembered is not None and remembered.llm_model_id == model_id:
        preset_id = remembered.llm_preset_id
    if preset_id not in preset_ids:
        preset_id = next((p.id for p in presets if p.is_default), None)
    system = (form or {}).get("system_prompt")
    if not isinstance(system, str):
        system = (conversation.system_prompt if conversation else None) or ""
    content = (form or {}).get("content")
    return Composer(
        models=models,
        llm_model_id=model_id,
        presets=presets,
        llm_preset_id=preset_id,
        system_prompt=system,
        content=content if isinstance(content, str) else "",
        errors=errors or {},
    )


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
    form: Mapping[str, Any], *, require_content: bool = True
) -> tuple[TurnChoice | None, Errors]:
    """Validate the composer's fields (llm_model_id, llm_preset_id, system_prompt, content).

    Returns the choice, or None and readable errors per field. Never raises on bad input.
    """
    errors: Errors = {}
    llm_model = _chosen_model(form.get("llm_model_id"), errors)
    preset = _chosen_preset(llm_model, form.get("llm_preset_id"), errors) if llm_model else None
    system = form.get("system_prompt")
    system = storable(system) if isinstance(system, str) and system.strip() else None
    if system is not None and len(system) > MAX_SYSTEM_PROMPT_CHARS:
        errors["system_prompt"] = [
            f"The system prompt is too long ({len(system)} characters; "
            f"at most {MAX_SYSTEM_PROMPT_CHARS})."
        ]
    content = form.get("content")
    content = storable(content) if isinstance(content, str) else ""
    if require_content and not content.strip():
        errors["content"] = ["Type a message first."]
    elif len(content) > MAX_CONTENT_CHARS:
        errors["content"] = [
            f"The message is too long ({len(content)} characters; at most {MAX_CONTENT_CHARS})."
        ]
    if errors or llm_model is None:
        return None, errors
    return TurnChoice(llm_model, preset, system, content), errors


def _chosen_model(raw: object, errors: Errors) -> LLMModel | None:
    model_id = parse_id(raw)
    llm_model = db.session.get(LLMModel, model_id) if model_id is not None else None
    if llm_model is None:
        errors["llm_model_id"] = ["Choose a model."]
        return None
    if not llm_model.enabled:
        errors["llm_model_id"] = [f"{llm_model.name} is disabled: choose another model."]
        return None
    return llm_model


def _chosen_preset(llm_model: LLMModel, raw: object, errors: Errors) -> LLMPreset | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None  # the model's "default" preset when it has one (the service's rule)
    preset_id = parse_id(raw)
    preset = db.session.get(LLMPreset, preset_id) if preset_id is not None else None
    if preset is None or preset.llm_model_id != llm_model.id:
        errors["llm_preset_id"] = [f"Choose one of the presets of {llm_model.name}."]
        return None
    return preset


# --- turns ---------------------------------------------------------------------------------


def add_turn(conversation: Conversation, choice: TurnChoice) -> tuple[ChatMessage, ChatMessage]:
    """Store the user's message and a pending assistant message; remember the selection.

    The first message also names a conversation that still has the default title.
    """
    preset = choice.preset or choice.llm_model.default_preset()
    user_message = ChatMessage(
        conversation_id=conversation.id, role="user", content=choice.content, status="complete"
    )
    reply = ChatMessage(
        conversation_id=conversation.id,
        role="assistant",
        status="pending",
        model_name=choice.llm_model.name,
        preset_name=preset.name if preset else None,
        details={
            "llm_model_id": choice.llm_model.id,
            "llm_preset_id": choice.preset.id if choice.preset else None,
            "system_prompt": choice.system_prompt,
        },
    )
    if conversation.title == DEFAULT_TITLE and not _has_messages(conversation.id):
        conversation.title = title_from(choice.content)
    conversation.llm_model_id = choice.llm_model.id
    conversation.llm_preset_id = preset.id if preset else None
    conversation.system_prompt = choice.system_prompt
    conversation.updated_at = utcnow()
    db.session.add_all([user_message, reply])
    db.session.commit()
    return user_message, reply


def history_before(conversation_id: int, message_id: int | None = None) -> list[dict[str, str]]:
    """The turns before a message, as role/content dicts for the next request.

    A turn counts when its reply has text the user saw (complete, or stopped / incomplete
    part-way); a turn whose reply failed or is still being written is left out, so the
    model never sees a question twice or a half-made turn.
    """
    return _turns_before(conversation_id, message_id)[0]


def _turns_before(
    conversation_id: int, message_id: int | None
) -> tuple[list[dict[str, str]], str | None]:
    """`history_before`, and the question still waiting for its reply (one query)."""
    query = select(ChatMessage.role, ChatMessage.content, ChatMessage.status).where(
        ChatMessage.conversation_id == conversation_id
    )
    if message_id is not None:
        query = query.where(ChatMessage.id < message_id)
    history: list[dict[str, str]] = []
    question: str | None = None
    for role, content, status in db.session.execute(query.order_by(ChatMessage.id)):
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


def prompt_budget(conversation: Conversation | None, choice: TurnChoice) -> Result:
    """The token budget the next message would meet (see `preview_prompt_budget`)."""
    history = history_before(conversation.id) if conversation is not None else []
    return preview_prompt_budget(
        choice.llm_model,
        user_text=choice.content,
        history=history,
        system=choice.system_prompt,
        preset=choice.preset,
    )


# --- one reply: claim, run, record ---------------------------------------------------------


def claim(message_id: int) -> bool:
    """pending → streaming, atomically; False when another request got there first."""
    result = db.session.execute(
        update(ChatMessage)
        .where(ChatMessage.id == message_id, ChatMessage.status == "pending")
        .values(status="streaming", updated_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    return result.rowcount == 1


def cancel_pending(message_id: int) -> bool:
    """pending → stopped, for a Stop pressed before the stream began; False otherwise."""
    result = db.session.execute(
        update(ChatMessage)
        .where(ChatMessage.id == message_id, ChatMessage.status == "pending")
        .values(status="stopped", updated_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    return result.rowcount == 1


def refuse_busy(message_id: int, reason: str) -> bool:
    """pending → error with code BUSY (the server is at its stream limit); False otherwise."""
    result = db.session.execute(
        update(ChatMessage)
        .where(ChatMessage.id == message_id, ChatMessage.status == "pending")
        .values(status="error", error_code="BUSY", error_text=reason, updated_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    return result.rowcount == 1


def settle_abandoned(conversation_id: int, older_than: timedelta) -> int:
    """Mark replies "incomplete" whose stream stopped writing long ago (a server that died
    mid-stream), so no page polls them forever. Returns how many were settled."""
    cutoff = utcnow() - older_than
    result = db.session.execute(
        update(ChatMessage)
        .where(
            ChatMessage.conversation_id == conversation_id,
            ChatMessage.status == "streaming",
            ChatMessage.updated_at < cutoff,
        )
        .values(
            status="incomplete",
            error_code=codes.LLM_REQUEST_FAILED,
            error_text="the reply was interrupted: the server stopped writing it",
            updated_at=utcnow(),
        ),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    return result.rowcount


@dataclass(frozen=True)
class Reply:
    """A claimed reply ready to stream: its events and the names to record with it."""

    message_id: int
    events: Iterator[StreamEvent]
    model_name: str | None
    preset_name: str | None


def start_reply(message: ChatMessage) -> Reply:
    """Read everything the reply needs from the database now and start the model call.

    The returned events only talk to the provider: safe to iterate in a response body after
    the request's session is closed.
    """
    details = message.details or {}
    names = {"model_name": message.model_name, "preset_name": message.preset_name}
    model_id = parse_id(details.get("llm_model_id"))
    # The provider comes in the same query: the reply needs its client.
    llm_model = (
        db.session.get(LLMModel, model_id, options=[joinedload(LLMModel.llm_provider)])
        if model_id is not None
        else None
    )
    if llm_model is None:
        failure = Result.failure(MODEL_NOT_FOUND, "the model chosen for this reply was deleted")
        return Reply(message.id, iter([StreamEvent("error", result=failure)]), **names)
    preset = None
    if details.get("llm_preset_id") is not None:
        preset = _row(LLMPreset, details["llm_preset_id"])
        if preset is None or preset.llm_model_id != llm_model.id:
            failure = Result.failure(
                codes.PRESET_NOT_FOUND, "the preset chosen for this reply no longer exists"
            )
            return Reply(message.id, iter([StreamEvent("error", result=failure)]), **names)
    turns, question = _turns_before(message.conversation_id, message.id)
    events = reply_events(
        llm_model,
        user_text=question or "",
        history=turns,
        system=details.get("system_prompt"),
        preset=preset,
    )
    preset_name = preset.name if preset else message.preset_name
    return Reply(message.id, events, llm_model.name, preset_name)


def _row(model: type[Any], raw_id: object) -> Any:
    row_id = parse_id(raw_id)
    return db.session.get(model, row_id) if row_id is not None else None


def reply_events(llm_model: LLMModel, **arguments: Any) -> Iterator[StreamEvent]:
    """stream_chat for a model that streams; otherwise one ordinary request whose whole
    reply arrives as a single delta, so every enabled model can be used in the chat."""
    if llm_model.supports_streaming:
        return stream_chat(llm_model, **arguments)
    prepared = prepare_chat(llm_model, **arguments, stream=False)
    if isinstance(prepared, Result):
        return iter([StreamEvent("error", result=prepared)])
    return _whole_reply(lambda: send_chat(prepared))


def _whole_reply(send: Callable[[], Result]) -> Iterator[StreamEvent]:
    result = send()
    if not result.success:
        yield StreamEvent("error", result=result)
        return
    content = result.value["assistant_message"]["content"]
    if content:
        yield StreamEvent("delta", content=content)
    yield StreamEvent("done", result=result)


class ReplyRecorder:
    """Collects a reply as it streams and writes it to its message with its own session.

    The request's session is closed while a reply streams (a connection per open stream
    would drain the pool), so every write here opens a short session on `engine`.
    """

    def __init__(
        self,
        engine: Engine,
        message_id: int,
        *,
        model_name: str | None,
        preset_name: str | None,
        checkpoint_seconds: float = CHECKPOINT_SECONDS,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.engine = engine
        self.message_id = message_id
        self.model_name = model_name
        self.preset_name = preset_name
        self.pieces: list[str] = []
        self.saved: ChatMessage | None = None
        self._clock = clock
        self._started = clock()
        self._first_token_ms: float | None = None
        self._checkpoint_seconds = checkpoint_seconds
        self._last_checkpoint = self._started

    @property
    def content(self) -> str:
        return storable("".join(self.pieces))

    def add(self, text: str) -> None:
        """One delta; now and then the text so far is saved, so a reload (or another tab)
        sees it grow and an abandoned stream can be told from a slow one."""
        if self._first_token_ms is None:
            self._first_token_ms = self._elapsed_ms()
        self.pieces.append(text)
        now = self._clock()
        if now - self._last_checkpoint >= self._checkpoint_seconds:
            self._last_checkpoint = now
            self._checkpoint()

    def finish(self, event: StreamEvent) -> ChatMessage:
        """Record the final `done` or `error` event."""
        result = event.result or Result.failure(INTERNAL_ERROR, "the stream ended without a result")
        value = result.value
        timings = value.get("timings") or {}
        values: dict[str, Any] = {
            "ttft_ms": timings.get("ttft_ms", self._first_token_ms),
            "total_ms": timings.get("total_ms") or self._elapsed_ms(),
        }
        if result.success:
            preset = value.get("preset")
            return self._save(
                status="complete",
                usage=value.get("usage"),
                preset_name=preset.name if preset is not None else self.preset_name,
                details={"finish_reason": value.get("finish_reason")},
                **values,
            )
        details: dict[str, Any] = {}
        if result.code == codes.PROMPT_TOO_LONG:
            details["budget"] = {
                key: value.get(key)
                for key in ("estimated_tokens", "max_tokens", "reserve_tokens", "limit_tokens")
            }
        return self._save(
            status="incomplete" if self.pieces else "error",
            error_code=result.code,
            error_text=storable("; ".join(result.errors)) or None,
            details=details,
            **values,
        )

    def stop(self) -> ChatMessage:
        """The browser went away (Stop, reload, closed tab): keep what arrived."""
        return self._save(status="stopped", **self._own_timings())

    def fail(self, text: str) -> ChatMessage:
        """Something broke on our side mid-stream; keep what arrived and say so."""
        status = "incomplete" if self.pieces else "error"
        return self._save(
            status=status, error_code=INTERNAL_ERROR, error_text=text, **self._own_timings()
        )

    def _own_timings(self) -> dict[str, Any]:
        return {"ttft_ms": self._first_token_ms, "total_ms": self._elapsed_ms()}

    def _elapsed_ms(self) -> float:
        return round((self._clock() - self._started) * 1000, 2)

    def _checkpoint(self) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(ChatMessage)
                .where(ChatMessage.id == self.message_id, ChatMessage.status == "streaming")
                .values(content=self.content, updated_at=utcnow())
            )

    def _save(
        self, *, status: str, details: dict[str, Any] | None = None, **values: Any
    ) -> ChatMessage:
        """Write the outcome once; later calls return what was saved."""
        if self.saved is not None:
            return self.saved
        with Session(self.engine, expire_on_commit=False) as session:
            message = session.get(ChatMessage, self.message_id)
            if message is None:  # the conversation was deleted while the reply streamed
                message = ChatMessage(id=self.message_id, role="assistant", content=self.content)
            else:
                message.status = status
                message.content = self.content
                message.model_name = self.model_name
                message.preset_name = values.pop("preset_name", self.preset_name)
                message.details = {**(message.details or {}), **(details or {})}
                for name, value in values.items():
                    setattr(message, name, value)
                message.updated_at = utcnow()
                session.commit()
        message.status = status
        self.saved = message
        return message
