"""The last turn through the Flask test client: regenerate / flip / continue / edit answer
fragments to htmx and redirects otherwise, 404 for another user's message, 409 for an older
turn or while a reply is written, the edit form keeping the text on errors, CSRF."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.factories import make_model, make_preset, make_provider
from webapp.extensions import db as _db
from webapp.models import ChatMessage, LLMModel
from webapp.services import alternatives
from webapp.services import conversations as chats
from webapp.services.conversations import MAX_CONTENT_CHARS

HX = {"HX-Request": "true"}


@pytest.fixture
def model(app: Flask) -> LLMModel:
    model = make_model(make_provider(name="Acme"), model="acme-1", name="Acme One", enabled=True)
    make_preset(model, key="default", name="Balanced")
    return model


def turn(user: Any, model: LLMModel, question: str, answer: str, status: str = "complete") -> Any:
    """A finished turn of `user`; its (question, reply)."""
    conversation = (
        chats.list_conversations(user.id)[0]
        if chats.list_conversations(user.id)
        else chats.start_conversation(user.id)
    )
    choice, errors = chats.choose(chats.Draft(llm_model_id=model.id, content=question))
    assert choice is not None, errors
    asked, reply = chats.add_turn(conversation, choice)
    reply.status, reply.content = status, answer
    _db.session.commit()
    return asked, reply


def reply_of(question: ChatMessage) -> ChatMessage:
    shown = alternatives.shown_answer(question)
    assert shown is not None
    return shown


def reload(message: ChatMessage) -> ChatMessage:
    _db.session.expire_all()
    found = _db.session.get(ChatMessage, message.id)
    assert found is not None
    return found


def test_regenerate_answers_a_pending_reply_in_place_and_keeps_the_old_one(
    member_client: FlaskClient, member: Any, model: LLMModel
) -> None:
    _, reply = turn(member, model, "Why?", "Because.")

    response = member_client.post(f"/messages/{reply.id}/regenerate", headers=HX)

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    [new_reply] = [m for m in alternatives.alternatives_of(reply) if m.id != reply.id]
    assert f'id="message-{new_reply.id}"' in html and "sse-connect" in html
    assert not reload(reply).is_active and new_reply.is_active
    new_reply.status, new_reply.content = "complete", "Since."
    _db.session.commit()

    page = member_client.get(f"/c/{reply.conversation_id}").get_data(as_text=True)
    assert "Since." in page and "Because." not in page
    assert '<span class="alternative-count" aria-label="Reply 2 of 2">2/2</span>' in page

    flipped = member_client.post(f"/messages/{reply.id}/activate", headers=HX)
    assert flipped.status_code == 200
    assert "Because." in flipped.get_data(as_text=True)
    assert "1/2" in flipped.get_data(as_text=True)
    page = member_client.get(f"/c/{reply.conversation_id}").get_data(as_text=True)
    assert "Because." in page and "Since." not in page


def test_without_javascript_the_actions_redirect_to_the_conversation(
    member_client: FlaskClient, member: Any, model: LLMModel
) -> None:
    _, reply = turn(member, model, "Why?", "Because.", status="stopped")

    response = member_client.post(f"/messages/{reply.id}/continue")

    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/c/{reply.conversation_id}")
    continued = alternatives.shown_answer(_db.session.get(ChatMessage, reply.reply_to_id))
    assert continued is not None and continued.content == "Because."
    assert continued.details["continues"] == reply.id


def test_regenerate_with_a_picked_model_and_preset(
    member_client: FlaskClient, member: Any, model: LLMModel
) -> None:
    other = make_model(make_provider(name="Other"), model="o-1", name="Other One", enabled=True)
    warm = make_preset(other, key="warm", name="Warm")
    _, reply = turn(member, model, "Why?", "Because.")
    page = member_client.get(f"/c/{reply.conversation_id}").get_data(as_text=True)
    assert f'<option value="{other.id}:{warm.id}">Other One · Warm</option>' in page

    response = member_client.post(
        f"/messages/{reply.id}/regenerate", data={"pick": f"{other.id}:{warm.id}"}, headers=HX
    )

    assert response.status_code == 200
    shown = alternatives.shown_answer(_db.session.get(ChatMessage, reply.reply_to_id))
    assert shown is not None
    assert (shown.model_name, shown.preset_name) == ("Other One", "Warm")


def test_a_member_cannot_regenerate_with_an_unusable_model(
    member_client: FlaskClient, member: Any, model: LLMModel
) -> None:
    keyed = make_provider(name="Keyed", requires_api_key=True)
    locked = make_model(keyed, model="k-1", name="Locked One", enabled=True)
    _, reply = turn(member, model, "Why?", "Because.")
    page = member_client.get(f"/c/{reply.conversation_id}").get_data(as_text=True)
    assert f'<option value="{locked.id}:" disabled>Locked One — needs an API key' in page

    response = member_client.post(
        f"/messages/{reply.id}/regenerate", data={"pick": f"{locked.id}:"}, headers=HX
    )

    assert response.status_code == 422
    assert "Locked One: needs an API key" in response.get_data(as_text=True)
    assert response.headers["HX-Retarget"] == "#flashes"
    assert alternatives.alternatives_of(reply) == [reply]


@pytest.mark.parametrize("action", ["regenerate", "continue", "activate", "edit"])
def test_an_older_turn_is_a_409_with_the_reason(
    member_client: FlaskClient, member: Any, model: LLMModel, action: str
) -> None:
    older_question, older = turn(member, model, "One?", "One.", status="stopped")
    turn(member, model, "Two?", "Two.")
    target = older_question if action == "edit" else older

    response = member_client.post(
        f"/messages/{target.id}/{action}", data={"content": "One again?"}, headers=HX
    )

    assert response.status_code == 409
    assert "Only the last message of a conversation can be" in response.get_data(as_text=True)
    assert response.headers["HX-Retarget"] == "#flashes"
    plain = member_client.post(f"/messages/{target.id}/{action}", data={"content": "Again?"})
    assert plain.status_code == 409
    assert "Only the last message" in plain.get_data(as_text=True)


def test_nothing_changes_while_a_reply_is_being_written(
    member_client: FlaskClient, member: Any, model: LLMModel
) -> None:
    question, reply = turn(member, model, "Why?", "Because.", status="stopped")
    member_client.post(f"/messages/{reply.id}/regenerate", headers=HX)  # pending now

    for path, data in [
        (f"/messages/{reply.id}/regenerate", {}),
        (f"/messages/{reply.id}/continue", {}),
        (f"/messages/{reply.id}/activate", {}),
        (f"/messages/{question.id}/edit", {"content": "How?"}),
    ]:
        response = member_client.post(path, data=data, headers=HX)
        assert response.status_code == 409, path
        assert "still being written" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["regenerate", "continue", "activate", "edit", "actions"], ids=str)
def test_another_users_message_is_a_404(
    member_client: FlaskClient, admin: Any, model: LLMModel, path: str
) -> None:
    question, reply = turn(admin, model, "Secret?", "Yes.", status="stopped")
    target = question if path == "edit" else reply
    if path == "actions":
        response = member_client.get(f"/messages/{target.id}/actions")
    else:
        response = member_client.post(
            f"/messages/{target.id}/{path}", data={"content": "x"}, headers=HX
        )

    assert response.status_code == 404
    assert alternatives.alternatives_of(reload(reply)) == [reply]


def test_the_actions_fragment_is_for_the_last_reply_only(
    member_client: FlaskClient, member: Any, model: LLMModel
) -> None:
    _, older = turn(member, model, "One?", "One.")
    _, last = turn(member, model, "Two?", "Two.", status="incomplete")

    assert member_client.get(f"/messages/{older.id}/actions").get_data(as_text=True) == ""
    html = member_client.get(f"/messages/{last.id}/actions").get_data(as_text=True)
    assert f'action="/messages/{last.id}/regenerate"' in html
    assert f'action="/messages/{last.id}/continue"' in html
    assert "alternative-count" not in html  # one answer: nothing to flip


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("   ", "Type a message first."),
        ("x" * (MAX_CONTENT_CHARS + 1), "The message is too long"),
    ],
    ids=["empty", "too long"],
)
def test_a_refused_edit_keeps_the_text_and_shows_the_error_by_the_field(
    member_client: FlaskClient, member: Any, model: LLMModel, typed: str, error: str
) -> None:
    question, reply = turn(member, model, "Why?", "Because.")

    response = member_client.post(
        f"/messages/{question.id}/edit", data={"content": typed}, headers=HX
    )

    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert f'id="edit-content-{question.id}-error" role="alert">{error}' in html
    assert f">{typed}</textarea>" in html
    assert '<details class="edit-message" open>' in html
    assert reload(question).content == "Why?"
    assert reload(reply).is_active
    plain = member_client.post(f"/messages/{question.id}/edit", data={"content": typed})
    assert plain.status_code == 422
    assert f">{typed}</textarea>" in plain.get_data(as_text=True)


def test_an_edit_replaces_the_question_and_drops_its_replies(
    member_client: FlaskClient, member: Any, model: LLMModel
) -> None:
    question, reply = turn(member, model, "Wyh?", "Pardon?")
    reply_id = reply.id

    response = member_client.post(
        f"/messages/{question.id}/edit", data={"content": "Why?"}, headers=HX
    )

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f'<article id="message-{reply_id}" hx-swap-oob="delete"></article>' in html
    assert "sse-connect" in html and ">Why?</p>" in html
    [new_id] = [int(i) for i in re.findall(r"/messages/(\d+)/stream", html)]
    assert reload(question).content == "Why?"
    answers = alternatives.alternatives_of(reply_of(reload(question)))
    assert [answer.id for answer in answers] == [new_id] and new_id > reply_id


def test_the_actions_check_the_csrf_token(
    app: Flask, member_client: FlaskClient, member: Any, model: LLMModel
) -> None:
    _, reply = turn(member, model, "Why?", "Because.")
    app.config["WTF_CSRF_ENABLED"] = True

    response = member_client.post(f"/messages/{reply.id}/regenerate", headers=HX)

    assert response.status_code == 400
    assert alternatives.alternatives_of(reload(reply)) == [reply]
