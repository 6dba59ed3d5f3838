"""The last turn of a chat: regenerate its reply, flip between the alternatives, continue a
cut reply, edit the question and ask again (see `services.alternatives`).

Each action answers htmx with the fragment that replaces the message it was started from —
a new reply in status "pending" streams exactly as after a send — and a plain form with a
redirect to the conversation. A turn that cannot change now (an older one, or a reply still
being written) answers 409 with the reason in the page.
"""

from __future__ import annotations

from dataclasses import replace

from flask import Blueprint, abort, make_response, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from webapp.blueprints.chat import page
from webapp.errors import error_response
from webapp.forms.composer import row_id
from webapp.htmx import is_htmx_fragment_request, redirect_for_htmx
from webapp.models import ChatMessage
from webapp.models.validation import Errors
from webapp.services import alternatives
from webapp.services import conversations as chats

bp = Blueprint("turns", __name__, url_prefix="/messages")


@bp.get("/<id:message_id>/actions")
def actions(message_id: int) -> ResponseReturnValue:
    """The last reply's controls, fetched once its stream has ended (the stream's own end
    frame is rendered without the database); nothing for any other message."""
    reply = _own_message(message_id)
    found = alternatives.reply_actions(reply, allow_unusable=current_user.is_admin)
    if found is None:
        return ""
    return render_template("chat/_reply_actions.html", actions=found)


@bp.post("/<id:message_id>/regenerate")
def regenerate(message_id: int) -> ResponseReturnValue:
    """A new answer to the same question: the reply's own model and preset, or the `pick`
    ("<model id>:<preset id>") of the picker."""
    reply = _own_message(message_id)
    pick = request.form.get("pick")
    if pick is None:
        draft = _draft_like(reply)
    else:
        model_id, _, preset_id = pick.partition(":")
        draft = chats.Draft(
            llm_model_id=row_id(model_id),
            llm_preset_id=row_id(preset_id),
            system_prompt=_system_prompt(reply),
        )
    choice, errors = _choose(draft, require_content=False)
    if choice is None:
        return _choice_refused(errors)
    try:
        new_reply = alternatives.regenerate(reply, choice)
    except alternatives.TurnConflict as conflict:
        return error_response(409, str(conflict))
    return _show(new_reply)


@bp.post("/<id:message_id>/continue")
def continue_reply(message_id: int) -> ResponseReturnValue:
    """Carry a stopped or cut reply on, with its own model and preset."""
    reply = _own_message(message_id)
    choice, errors = _choose(_draft_like(reply), require_content=False)
    if choice is None:
        return _choice_refused(errors)
    try:
        new_reply = alternatives.continue_reply(reply, choice)
    except alternatives.TurnConflict as conflict:
        return error_response(409, str(conflict))
    return _show(new_reply)


@bp.post("/<id:message_id>/activate")
def activate(message_id: int) -> ResponseReturnValue:
    """The previous / next buttons: show this alternative (and use it as history from now on)."""
    reply = _own_message(message_id)
    try:
        alternatives.activate(reply)
    except alternatives.TurnConflict as conflict:
        return error_response(409, str(conflict))
    if not is_htmx_fragment_request():
        return redirect_for_htmx(url_for("chat.show", conversation_id=reply.conversation_id))
    found = alternatives.reply_actions(reply, allow_unusable=current_user.is_admin)
    return render_template("chat/_message.html", message=reply, actions=found)


@bp.post("/<id:message_id>/edit")
def edit(message_id: int) -> ResponseReturnValue:
    """The last question with new text, answered again by the model and preset of the reply
    it had (its replies are dropped). The composer's checks apply; on an error the form comes
    back open, with the text as typed."""
    question = _own_message(message_id)
    content = request.form.get("content")
    content = content if isinstance(content, str) else ""
    answered = alternatives.shown_answer(question)
    draft = _draft_like(answered) if answered else _draft_from_conversation(question)
    choice, errors = _choose(replace(draft, content=content))
    if choice is None:
        return _edit_form(question, content, errors)
    try:
        new_reply = alternatives.edit_question(question, choice)
    except alternatives.TurnConflict as conflict:
        return error_response(409, str(conflict))
    if not is_htmx_fragment_request():
        return redirect_for_htmx(url_for("chat.show", conversation_id=question.conversation_id))
    return render_template(
        "chat/_edited_turn.html",
        question=question,
        reply=new_reply,
        dropped_id=answered.id if answered else None,
    )


def _draft_like(reply: ChatMessage) -> chats.Draft:
    """The model, preset and system prompt `reply` was asked with."""
    return chats.Draft(
        llm_model_id=reply.llm_model_id,
        llm_preset_id=reply.llm_preset_id,
        system_prompt=_system_prompt(reply),
    )


def _draft_from_conversation(question: ChatMessage) -> chats.Draft:
    conversation = question.conversation
    return chats.Draft(
        llm_model_id=conversation.llm_model_id,
        llm_preset_id=conversation.llm_preset_id,
        system_prompt=conversation.system_prompt,
    )


def _system_prompt(reply: ChatMessage) -> str | None:
    return (reply.details or {}).get("system_prompt")


def _own_message(message_id: int) -> ChatMessage:
    message = chats.find_message(current_user.id, message_id)
    if message is None:
        abort(404)
    return message


def _choose(
    draft: chats.Draft, *, require_content: bool = True
) -> tuple[chats.TurnChoice | None, Errors]:
    return chats.choose(
        draft, require_content=require_content, allow_unusable=current_user.is_admin
    )


def _choice_refused(errors: Errors) -> ResponseReturnValue:
    return error_response(422, " ".join(text for texts in errors.values() for text in texts))


def _show(new_reply: ChatMessage) -> ResponseReturnValue:
    """The new pending reply in place of the one the action started from."""
    if not is_htmx_fragment_request():
        return redirect_for_htmx(url_for("chat.show", conversation_id=new_reply.conversation_id))
    return render_template("chat/_message.html", message=new_reply)


def _edit_form(question: ChatMessage, content: str, errors: Errors) -> ResponseReturnValue:
    """The question again with its edit form open: the text as typed, the errors beside it."""
    edit = {"editable_id": question.id, "edit_text": content, "edit_errors": errors}
    if not is_htmx_fragment_request():
        return page(question.conversation, status=422, **edit)
    return make_response(render_template("chat/_message.html", message=question, **edit), 422)
