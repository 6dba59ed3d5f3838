"""The chat page: conversations, the composer, and replies streamed over SSE.

Sending a message stores the turn and answers with two bubbles; the assistant's bubble
opens an EventSource on `/messages/<id>/stream`, which claims the reply, runs the model and
sends `delta` frames (escaped text) and one `end` frame (the final `_message.html`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    make_response,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user
from markupsafe import Markup, escape

from webapp.extensions import db
from webapp.htmx import is_htmx_fragment_request, redirect_for_htmx
from webapp.models import ChatMessage, Conversation
from webapp.models.validation import Errors
from webapp.services import conversations as chats
from webapp.services import result as codes
from webapp.services.chat import StreamEvent
from webapp.services.markdown import render_markdown
from webapp.services.result import Result
from webapp.services.stream_slots import stream_slots

log = logging.getLogger(__name__)

bp = Blueprint("chat", __name__, url_prefix="/")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
BUSY_TEXT = "ModelDesk is busy: too many replies are streaming right now. Try again in a moment."
# SSE ends a line at CR, LF or CRLF; each line of a payload needs its own "data:" field.
_SSE_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@bp.app_template_filter("markdown")
def markdown_filter(text: str | None) -> Markup:
    return render_markdown(text)


def sse_frame(event: str, data: str) -> str:
    """One server-sent event; the client joins the data lines back with newlines."""
    lines = "".join(f"data: {line}\n" for line in _SSE_LINE_BREAK.split(data))
    return f"event: {event}\n{lines}\n"


# --- pages ---------------------------------------------------------------------------------


@bp.get("/")
def index() -> ResponseReturnValue:
    conversations = chats.list_conversations(current_user.id)
    conversation = conversations[0] if conversations else None
    return _page(conversation, conversations=conversations)


@bp.get("/c/<int:conversation_id>")
def show(conversation_id: int) -> ResponseReturnValue:
    return _page(_own_conversation(conversation_id))


@bp.post("/c/new")
def new_conversation() -> ResponseReturnValue:
    """The "New chat" button (no fields), or the first message sent from the empty page."""
    if "content" not in request.form:
        conversation = chats.start_conversation(current_user.id)
        return redirect_for_htmx(url_for("chat.show", conversation_id=conversation.id))
    choice, errors = chats.choose(request.form)
    if choice is None:
        return _composer_errors(None, errors)
    conversation = chats.start_conversation(current_user.id)
    chats.add_turn(conversation, choice)
    return redirect_for_htmx(url_for("chat.show", conversation_id=conversation.id))


@bp.post("/c/<int:conversation_id>/messages")
def send_message(conversation_id: int) -> ResponseReturnValue:
    conversation = _own_conversation(conversation_id)
    choice, errors = chats.choose(request.form)
    if choice is None:
        return _composer_errors(conversation, errors)
    new_messages = chats.add_turn(conversation, choice)
    if not is_htmx_fragment_request():
        return redirect_for_htmx(url_for("chat.show", conversation_id=conversation.id))
    return render_template(
        "chat/_turn.html",
        new_messages=new_messages,
        conversation=conversation,
        conversations=chats.list_conversations(current_user.id),
    )


@bp.post("/c/<int:conversation_id>/rename")
def rename(conversation_id: int) -> ResponseReturnValue:
    conversation = _own_conversation(conversation_id)
    title = request.form.get("title", "")
    errors = chats.rename_conversation(conversation, title)
    if errors:
        return _page(conversation, rename=(conversation.id, title, errors), status=422)
    flash("Conversation renamed.", "success")
    return redirect_for_htmx(url_for("chat.show", conversation_id=conversation.id))


@bp.post("/c/<int:conversation_id>/delete")
def delete(conversation_id: int) -> ResponseReturnValue:
    conversation = _own_conversation(conversation_id)
    title = conversation.title
    chats.delete_conversation(conversation)
    flash(f"Deleted “{title}”.", "success")
    return redirect_for_htmx(url_for("chat.index"))


def _page(
    conversation: Conversation | None,
    *,
    conversations: list[Conversation] | None = None,
    composer: chats.Composer | None = None,
    rename: tuple[int, str, Errors] | None = None,
    status: int = 200,
) -> Response:
    messages: list[ChatMessage] = []
    if conversation is not None:
        messages = chats.transcript(conversation)
        if any(m.status == "streaming" for m in messages) and chats.settle_abandoned(
            conversation.id, _abandoned_after()
        ):
            messages = chats.transcript(conversation)
    context = {
        "conversation": conversation,
        "conversations": (
            conversations
            if conversations is not None
            else chats.list_conversations(current_user.id)
        ),
        "messages": messages,
        "composer": composer or chats.composer_for(current_user.id, conversation),
        "rename": rename,
    }
    return make_response(render_template("chat/index.html", **context), status)


def _composer_errors(conversation: Conversation | None, errors: Errors) -> Response:
    """The form again with its errors and everything typed: a fragment for htmx (swapped
    over the composer), the whole page otherwise."""
    composer = chats.composer_for(current_user.id, conversation, request.form, errors)
    if not is_htmx_fragment_request():
        return _page(conversation, composer=composer, status=422)
    html = render_template("chat/_composer.html", composer=composer, conversation=conversation)
    response = make_response(html, 422)
    response.headers["HX-Retarget"] = "#composer"
    response.headers["HX-Reswap"] = "outerHTML"
    return response


def _own_conversation(conversation_id: object) -> Conversation:
    conversation = chats.find_conversation(current_user.id, conversation_id)
    if conversation is None:
        abort(404)
    return conversation


def _own_message(message_id: object) -> ChatMessage:
    message = chats.find_message(current_user.id, message_id)
    if message is None:
        abort(404)
    return message


def _abandoned_after() -> timedelta:
    # A live stream writes at least once per read timeout; well past it, nobody is writing.
    return timedelta(seconds=float(current_app.config.get("LLM_REQUEST_TIMEOUT", 60)) + 30)


# --- composer helpers: presets of a model, the budget meter ----------------------------------


@bp.get("/chat/presets")
def presets() -> ResponseReturnValue:
    """The preset field for the model picked in the composer (default preset selected)."""
    model_id = chats.parse_id(request.args.get("llm_model_id"))
    enabled = {model.id for model in chats.enabled_models()}
    choices = chats.model_presets(model_id if model_id in enabled else None)
    selected = next((preset.id for preset in choices if preset.is_default), None)
    composer = chats.Composer(
        models=[], llm_model_id=model_id, presets=choices, llm_preset_id=selected
    )
    return render_template("chat/_preset_field.html", composer=composer)


@bp.post("/chat/budget")
def budget() -> ResponseReturnValue:
    """≈ estimated prompt tokens against the model's limit, for the draft in the composer."""
    conversation = None
    if request.form.get("conversation_id"):
        conversation = chats.find_conversation(current_user.id, request.form["conversation_id"])
    form = request.form.to_dict()
    choice, errors = chats.choose(form, require_content=False)
    if choice is None and set(errors) == {"llm_preset_id"}:
        # The model was just changed and the preset list not yet swapped: count with the
        # new model's default preset, as a send right after would be corrected to.
        form.pop("llm_preset_id")
        choice, errors = chats.choose(form, require_content=False)
    result = chats.prompt_budget(conversation, choice) if choice is not None else None
    return render_template("chat/_budget.html", result=result, errors=errors)


# --- one message: show, stop, stream ------------------------------------------------------


@bp.get("/messages/<int:message_id>")
def show_message(message_id: int) -> ResponseReturnValue:
    """One message as the page shows it; a reply still being written polls this."""
    message = _own_message(message_id)
    if message.status == "streaming" and chats.settle_abandoned(
        message.conversation_id, _abandoned_after()
    ):
        db.session.refresh(message)
    return render_template("chat/_message.html", message=message)


@bp.post("/messages/<int:message_id>/stop")
def stop_message(message_id: int) -> ResponseReturnValue:
    """Stop pressed. A reply that never started is marked stopped here; a streaming one is
    stopped by its closed EventSource (the stream sees the disconnect and saves itself), so
    this answers with the message as it is now — polling until it is final."""
    message = _own_message(message_id)
    if chats.cancel_pending(message.id):
        db.session.refresh(message)
    return render_template("chat/_message.html", message=message)


@bp.get("/messages/<int:message_id>/stream")
def stream_message(message_id: int) -> ResponseReturnValue:
    """The reply as server-sent events: `delta` frames, then one `end` frame.

    Only the request that claims the pending message streams; any other (an EventSource
    reconnecting, a second tab) gets 204, which tells EventSource not to retry.
    """
    message = _own_message(message_id)
    slots = stream_slots()
    if not slots.try_acquire():
        return _busy(message)
    try:
        if not chats.claim(message.id):
            slots.release()
            return "", 204
        reply = chats.start_reply(message)
    except BaseException:
        slots.release()
        raise
    recorder = chats.ReplyRecorder(
        db.engine, reply.message_id, model_name=reply.model_name, preset_name=reply.preset_name
    )
    # Everything is read; give the connection back while the reply streams.
    db.session.close()
    response = Response(
        stream_with_context(_frames(reply.events, recorder)),
        mimetype="text/event-stream",
        headers=SSE_HEADERS,
    )
    # On close, whether or not the body was ever iterated (a client gone before the first
    # byte never starts the generator, so its `finally` cannot be relied on).
    response.call_on_close(slots.release)
    return response


def _busy(message: ChatMessage) -> ResponseReturnValue:
    """Too many replies stream in this process: say so in the transcript, at once."""
    if not chats.refuse_busy(message.id, BUSY_TEXT):
        return "", 204
    db.session.refresh(message)
    frame = sse_frame("end", render_template("chat/_message.html", message=message))
    return Response(frame, mimetype="text/event-stream", headers=SSE_HEADERS)


def _frames(events: Iterator[StreamEvent], recorder: chats.ReplyRecorder) -> Iterator[str]:
    """SSE frames for one reply. Never touches the request's session: the recorder saves
    through its own. Closing this generator (the browser went away) closes the upstream."""
    try:
        yield ": reply\n\n"  # headers and a first byte now: the EventSource opens at once
        final: ChatMessage | None = None
        for event in events:
            if event.type != "delta":
                final = recorder.finish(event)
                break
            if event.content:
                recorder.add(event.content)
                yield sse_frame("delta", str(escape(event.content)))
        if final is None:
            ended = Result.failure(
                codes.LLM_REQUEST_FAILED, "the reply ended before it was complete"
            )
            final = recorder.finish(StreamEvent("error", result=ended))
        yield sse_frame("end", render_template("chat/_message.html", message=final))
    except GeneratorExit:
        _close(events)
        recorder.stop()
        raise
    except Exception:
        log.exception("chat reply %s failed while streaming", recorder.message_id)
        _close(events)
        final = recorder.fail("the reply stopped because of an error on the server")
        yield sse_frame("end", render_template("chat/_message.html", message=final))
    finally:
        _close(events)
        if recorder.saved is None:  # ended some other way (the worker shutting down, …)
            recorder.fail("the reply was interrupted")


def _close(events: Any) -> None:
    close = getattr(events, "close", None)
    if close is not None:
        close()
