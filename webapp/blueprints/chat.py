"""The chat page: conversations, the composer, and replies streamed over SSE.

Sending a message stores the turn and answers with two bubbles; the assistant's bubble
opens an EventSource on `/messages/<id>/stream`. The `replies` service runs the reply; this
view only turns its events into `delta` frames (escaped text) and one `end` frame (the
final `_message.html`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user
from markupsafe import escape

from webapp.extensions import db, login_manager
from webapp.forms.chat import RenameForm
from webapp.forms.composer import read_draft, row_id
from webapp.htmx import is_htmx_fragment_request, keep_address, redirect_for_htmx
from webapp.models import ChatMessage, Conversation
from webapp.models.validation import Errors
from webapp.security import session_user
from webapp.services import (
    alternatives,
    conversation_budget,
    conversation_search,
    deletions,
    replies,
    reply_runs,
    reply_states,
    transcript_export,
)
from webapp.services import conversations as chats
from webapp.services.presets import presets_of
from webapp.templating import render_fragment

bp = Blueprint("chat", __name__, url_prefix="/")

# Longer than anything worth searching for; the rest of a pasted page is ignored.
MAX_SEARCH_CHARS = 200
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# SSE ends a line at CR, LF or CRLF; each line of a payload needs its own "data:" field.
_SSE_LINE_BREAK = re.compile(r"\r\n|\r|\n")


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


@bp.get("/c/<id:conversation_id>")
def show(conversation_id: int) -> ResponseReturnValue:
    return _page(_own_conversation(conversation_id))


@bp.post("/c/new")
def new_conversation() -> ResponseReturnValue:
    """The "New chat" button (no fields), or the first message sent from the empty page."""
    if "content" not in request.form:
        conversation = chats.start_conversation(current_user.id)
        return redirect_for_htmx(url_for("chat.show", conversation_id=conversation.id))
    choice, errors = chats.choose(read_draft(request.form), allow_unusable=current_user.is_admin)
    if choice is None:
        return _composer_errors(None, errors)
    refusal = conversation_budget.refuse_over_budget(None, choice)
    if refusal is not None:
        return _composer_errors(None, {"content": refusal.errors})
    conversation = chats.start_conversation(current_user.id)
    chats.add_turn(conversation, choice)
    return redirect_for_htmx(url_for("chat.show", conversation_id=conversation.id))


@bp.post("/c/<id:conversation_id>/messages")
def send_message(conversation_id: int) -> ResponseReturnValue:
    conversation = _own_conversation(conversation_id)
    choice, errors = chats.choose(read_draft(request.form), allow_unusable=current_user.is_admin)
    if choice is None:
        return _composer_errors(conversation, errors)
    refusal = conversation_budget.refuse_over_budget(conversation, choice)
    if refusal is not None:
        return _composer_errors(conversation, {"content": refusal.errors})
    new_messages = chats.add_turn(conversation, choice)
    if not is_htmx_fragment_request():
        return redirect_for_htmx(url_for("chat.show", conversation_id=conversation.id))
    return render_template(
        "chat/_turn.html",
        new_messages=new_messages,
        conversation=conversation,
        conversations=chats.list_conversations(current_user.id),
    )


@bp.post("/c/<id:conversation_id>/rename")
def rename(conversation_id: int) -> ResponseReturnValue:
    conversation = _own_conversation(conversation_id)
    form = RenameForm()
    if not form.validate():
        typed = request.form.get("title", "")
        page = _page(conversation, rename=(conversation.id, typed, form.errors), status=422)
        return keep_address(page, url_for("chat.show", conversation_id=conversation.id))
    chats.rename_conversation(conversation, form.title.data)
    flash("Conversation renamed.", "success")
    return redirect_for_htmx(url_for("chat.show", conversation_id=conversation.id))


@bp.get("/c/<id:conversation_id>/rename")
def rename_page(conversation_id: int) -> ResponseReturnValue:
    """Where a failed plain (no-JS) rename leaves the address bar: a reload or a bookmark
    of it opens the conversation instead of a 405."""
    conversation = _own_conversation(conversation_id)
    return redirect(url_for("chat.show", conversation_id=conversation.id), 303)


@bp.post("/c/<id:conversation_id>/fit-history")
def set_fit_history(conversation_id: int) -> ResponseReturnValue:
    """The composer's "Fit long history automatically" checkbox, saved as it changes; the
    budget meter then counts again with the new setting."""
    conversation = _own_conversation(conversation_id)
    # A checkbox sends its value only when ticked.
    chats.set_fit_history(conversation, "fit_history" in request.form)
    if not is_htmx_fragment_request():
        return redirect_for_htmx(url_for("chat.show", conversation_id=conversation.id))
    response = make_response(render_template("chat/_fit_history.html", conversation=conversation))
    response.headers["HX-Trigger"] = json.dumps({"budget-refresh": {"target": "#budget"}})
    return response


@bp.post("/c/<id:conversation_id>/delete")
def delete(conversation_id: int) -> ResponseReturnValue:
    title = _own_conversation(conversation_id).title
    deletions.delete_conversation(current_user.id, conversation_id)
    flash(f"Deleted “{title}”.", "success")
    return redirect_for_htmx(url_for("chat.index"))


# --- search and export -----------------------------------------------------------------------


@bp.get("/chat/search")
def search() -> ResponseReturnValue:
    """The sidebar's search box. htmx swaps the answer over the conversation list (the list
    itself when the box is empty); without JavaScript the form's GET shows the whole page,
    the results in the sidebar."""
    query = request.args.get("q", "")[:MAX_SEARCH_CHARS]
    conversation_id = row_id(request.args.get("conversation_id"))
    conversation = (
        chats.find_conversation(current_user.id, conversation_id) if conversation_id else None
    )
    hits = conversation_search.search(current_user.id, query) if query.strip() else None
    if hits is not None and is_htmx_fragment_request():
        return render_template("chat/_search_results.html", hits=hits, search_query=query)
    conversations = chats.list_conversations(current_user.id)
    if is_htmx_fragment_request():
        return render_template(
            "chat/_conversation_list.html", conversations=conversations, conversation=conversation
        )
    if conversation is None and conversations:
        conversation = conversations[0]  # what the home page would show
    return _page(conversation, conversations=conversations, search_query=query, hits=hits)


@bp.get("/c/<id:conversation_id>/export.md")
def export_markdown(conversation_id: int) -> ResponseReturnValue:
    conversation = _own_conversation(conversation_id)
    body = transcript_export.as_markdown(conversation, chats.transcript(conversation))
    return _attachment(body, "text/markdown; charset=utf-8", conversation, "md")


@bp.get("/c/<id:conversation_id>/export.json")
def export_json(conversation_id: int) -> ResponseReturnValue:
    conversation = _own_conversation(conversation_id)
    document = transcript_export.as_json(conversation, chats.transcript(conversation))
    body = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    return _attachment(body, "application/json; charset=utf-8", conversation, "json")


def _attachment(
    body: str, content_type: str, conversation: Conversation, extension: str
) -> Response:
    response = make_response(body)
    response.content_type = content_type
    filename = transcript_export.export_filename(conversation, extension)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _page(
    conversation: Conversation | None,
    *,
    conversations: list[Conversation] | None = None,
    composer: chats.Composer | None = None,
    rename: tuple[int, str, Errors] | None = None,
    search_query: str = "",
    hits: list[conversation_search.SearchHit] | None = None,
    status: int = 200,
    **extra: Any,
) -> Response:
    messages: list[ChatMessage] = []
    if conversation is not None:
        messages = chats.transcript(conversation)
        if any(m.status == "streaming" for m in messages) and reply_states.settle_abandoned(
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
        "composer": composer
        or chats.composer_for(current_user.id, conversation, allow_unusable=current_user.is_admin),
        "rename": rename,
        "search_query": search_query,
        "hits": hits,
        **_last_turn(messages),
        **extra,
    }
    return make_response(render_template("chat/index.html", **context), status)


# The page's name for it: the turns blueprint shows its form errors in the whole page too.
page = _page


def _last_turn(messages: list[ChatMessage]) -> dict[str, Any]:
    """What the last turn offers: the question's Edit form, the reply's controls."""
    question, reply = alternatives.last_turn(messages)
    actions = reply and alternatives.reply_actions(reply, allow_unusable=current_user.is_admin)
    return {"editable_id": question.id if question else None, "turn_actions": actions}


def _composer_errors(conversation: Conversation | None, errors: Errors) -> Response:
    """The form again with its errors and everything typed: a fragment for htmx (swapped
    over the composer), the whole page otherwise."""
    composer = chats.composer_for(
        current_user.id,
        conversation,
        read_draft(request.form),
        errors,
        allow_unusable=current_user.is_admin,
    )
    if not is_htmx_fragment_request():
        return _page(conversation, composer=composer, status=422)
    html = render_template("chat/_composer.html", composer=composer, conversation=conversation)
    response = make_response(html, 422)
    response.headers["HX-Retarget"] = "#composer"
    response.headers["HX-Reswap"] = "outerHTML"
    return response


def _own_conversation(conversation_id: int) -> Conversation:
    conversation = chats.find_conversation(current_user.id, conversation_id)
    if conversation is None:
        abort(404)
    return conversation


def _own_message(message_id: int) -> ChatMessage:
    message = chats.find_message(current_user.id, message_id)
    if message is None:
        abort(404)
    return message


def _abandoned_after() -> timedelta:
    return reply_states.abandoned_after(current_app.config)


# --- composer helpers: presets of a model, the budget meter ----------------------------------


@bp.get("/chat/presets")
def presets() -> ResponseReturnValue:
    """The preset field for the model picked in the composer (default preset selected)."""
    model_id = row_id(request.args.get("llm_model_id"))
    enabled = {model.id for model in chats.enabled_models()}
    choices = presets_of(model_id if model_id in enabled else None)
    selected = next((preset.id for preset in choices if preset.is_default), None)
    composer = chats.Composer(
        models=[], llm_model_id=model_id, presets=choices, llm_preset_id=selected
    )
    return render_template("chat/_preset_field.html", composer=composer)


def _composer_choice() -> tuple[Conversation | None, chats.TurnChoice | None, Errors]:
    """The conversation and the choice the composer's draft makes (content not required)."""
    conversation = None
    conversation_id = row_id(request.form.get("conversation_id"))
    if conversation_id:
        conversation = chats.find_conversation(current_user.id, conversation_id)
    draft = read_draft(request.form)
    choice, errors = chats.choose(
        draft, require_content=False, allow_unusable=current_user.is_admin
    )
    if choice is None and set(errors) == {"llm_preset_id"}:
        # The model was just changed and the preset list not yet swapped: count with the
        # new model's default preset, as a send right after would be corrected to.
        choice, errors = chats.choose(
            replace(draft, llm_preset_id=None),
            require_content=False,
            allow_unusable=current_user.is_admin,
        )
    return conversation, choice, errors


@bp.post("/chat/budget")
def budget() -> ResponseReturnValue:
    """≈ estimated prompt tokens against the model's limit, for the draft in the composer."""
    conversation, choice, errors = _composer_choice()
    result = conversation_budget.prompt_budget(conversation, choice) if choice is not None else None
    return render_template("chat/_budget.html", result=result, errors=errors)


@bp.post("/chat/request")
def request_preview() -> ResponseReturnValue:
    """Admins: the exact request the draft would send (URL, masked headers, JSON body,
    budget); nothing is sent."""
    if not current_user.is_admin:
        abort(403)
    conversation, choice, errors = _composer_choice()
    result = (
        conversation_budget.request_preview(conversation, choice) if choice is not None else None
    )
    return render_template("chat/_request.html", result=result, errors=errors)


# --- one message: show, stop, stream ------------------------------------------------------


@bp.get("/messages/<id:message_id>")
def show_message(message_id: int) -> ResponseReturnValue:
    """One message as the page shows it; a reply still being written polls this."""
    message = _own_message(message_id)
    if message.status == "streaming" and reply_states.settle_abandoned(
        message.conversation_id, _abandoned_after()
    ):
        db.session.refresh(message)
    return render_template("chat/_message.html", message=message)


@bp.post("/messages/<id:message_id>/stop")
def stop_message(message_id: int) -> ResponseReturnValue:
    """Stop pressed, in any tab: the reply ends as stopped wherever it is being written, and
    this answers with it as saved."""
    stopped = reply_runs.stop(_own_message(message_id).id)
    if stopped is None:  # its conversation was deleted meanwhile
        abort(404)
    return render_template("chat/_message.html", message=stopped)


@bp.get("/messages/<id:message_id>/stream")
def stream_message(message_id: int) -> ResponseReturnValue:
    """The reply as server-sent events, from its first character: `delta` frames, then one
    `end` frame.

    The first request for a pending reply starts it; the reply then runs on the server to
    its end whether or not anyone watches, and any later request (a reload, another tab,
    another worker) follows it live. A reply already over answers 204, which tells
    EventSource not to retry (the page then fetches the saved message).
    """
    signed_in = session_user()
    if signed_in is None:  # require_access lets only a session naming a user through
        return login_manager.unauthorized()
    try:
        following = reply_runs.watch(message_id, signed_in)
    except reply_runs.ReplyNotFound:
        abort(404)
    except reply_runs.SessionEnded:
        return login_manager.unauthorized()
    if following is None:
        return "", 204
    frames = _frames(following.events, following.how)
    response = Response(
        stream_with_context(frames), mimetype="text/event-stream", headers=SSE_HEADERS
    )
    # On close, whether or not the body was ever iterated: a follower stops following.
    response.call_on_close(following.events.close)
    return response


def _frames(events: Iterator[replies.ReplyEvent], how: str) -> Iterator[str]:
    """SSE frames for one reply. Never touches the request's session: the reply is recorded
    and followed through the services' own connections."""
    # Headers and a first byte now, so the EventSource opens at once (the comment says how
    # this page follows the reply); the text comes from its first character, so `reset`
    # clears what an earlier connection showed.
    yield f": reply {how}\n\n" + sse_frame("reset", "")
    for event in events:
        if isinstance(event, replies.ReplyDelta):
            yield sse_frame("delta", str(escape(event.text)))
        elif isinstance(event, replies.ReplyHeartbeat):
            # An SSE comment: the browser ignores it; a write to a browser that left fails,
            # which closes this stream (the reply goes on) within a beat or two.
            yield ": keep-alive\n\n"
        else:
            yield sse_frame("end", render_fragment("chat/_message.html", message=event.message))
