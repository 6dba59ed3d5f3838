"""Over budget, through the Flask test client: a refused send stores nothing and keeps the
text, with the reason and the four numbers next to the message field; the meter says how
many earlier turns are left out to fit; the "Fit long history automatically" setting."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.factories import make_model, make_preset, make_provider
from tests.support.users import ADMIN_EMAIL, sign_in
from webapp.extensions import db as _db
from webapp.models import ChatMessage, Conversation, LLMModel, User
from webapp.services import run_chat
from webapp.services.users import create_user

HX = {"HX-Request": "true"}
WINDOW = 120
RESERVE = 20
TOO_LONG = "This message alone is longer than the window allows. " * 20
FOUR_NUMBERS = re.compile(
    r"Too long for Acme One: ≈ ([\d,]+) / ([\d,]+) tokens \(context window ([\d,]+) − "
    r"([\d,]+) reserved for the reply\)"
)


@pytest.fixture
def model(app: Flask) -> LLMModel:
    model = make_model(make_provider(), name="Acme One", enabled=True, context_window_tokens=WINDOW)
    make_preset(model, llm_options_overrides={"max_tokens": RESERVE})
    return model


def text_of(page: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", "", page)).split())


def form(model: LLMModel, content: str, **fields: str) -> dict[str, str]:
    return {"llm_model_id": str(model.id), "llm_preset_id": "", "content": content, **fields}


def conversation_of(user: User, model: LLMModel, turns: int) -> Conversation:
    conversation = Conversation(user_id=user.id, title="A long talk", llm_model_id=model.id)
    _db.session.add(conversation)
    _db.session.flush()
    for number in range(turns):
        _db.session.add_all(
            [
                ChatMessage(conversation_id=conversation.id, role="user", content=f"Q{number}"),
                ChatMessage(
                    conversation_id=conversation.id,
                    role="assistant",
                    content=f"Answer {number}: " + "words " * 12,
                ),
            ]
        )
    _db.session.commit()
    return conversation


def count(model_class: Any) -> int:
    _db.session.expire_all()
    return _db.session.scalar(_db.select(_db.func.count()).select_from(model_class))


def four_numbers(html: str) -> tuple[int, ...]:
    found = FOUR_NUMBERS.search(text_of(html))
    assert found is not None, text_of(html)
    return tuple(int(number.replace(",", "")) for number in found.groups())


# --- a refused send ----------------------------------------------------------------------------


def test_a_send_over_the_limit_stores_nothing_and_keeps_the_text(
    member_client: FlaskClient, member: User, model: LLMModel
) -> None:
    conversation = conversation_of(member, model, turns=1)
    data = form(model, TOO_LONG, system_prompt="Be brief.")
    engine = run_chat(model, user_text=TOO_LONG, system="Be brief.")
    assert engine.code == "PROMPT_TOO_LONG"
    expected = tuple(
        engine.value[name]
        for name in ("estimated_tokens", "limit_tokens", "max_tokens", "reserve_tokens")
    )

    for headers in ({}, HX):
        response = member_client.post(f"/c/{conversation.id}/messages", data=data, headers=headers)

        assert response.status_code == 422
        html = response.get_data(as_text=True)
        # The error next to the message field, with the four numbers of PROMPT_TOO_LONG.
        error = re.search(r'<p class="field-error" id="content-error"[^>]*>(.*?)</p>', html)
        assert error is not None
        assert four_numbers(error.group(1)) == expected
        assert 'aria-invalid="true"' in html
        assert f">{TOO_LONG}</textarea>" in html
        assert ">Be brief.</textarea>" in html
    assert response.headers["HX-Retarget"] == "#composer"
    assert count(ChatMessage) == 2  # the earlier turn only


def test_a_first_message_over_the_limit_starts_no_conversation(
    member_client: FlaskClient, model: LLMModel
) -> None:
    response = member_client.post("/c/new", data=form(model, TOO_LONG), headers=HX)

    assert response.status_code == 422
    assert four_numbers(response.get_data(as_text=True))[2:] == (WINDOW, RESERVE)
    assert count(Conversation) == 0
    assert count(ChatMessage) == 0


# --- the meter ---------------------------------------------------------------------------------


def test_the_meter_says_how_many_earlier_turns_are_left_out(
    member_client: FlaskClient, member: User, model: LLMModel
) -> None:
    conversation = conversation_of(member, model, turns=8)
    data = form(model, "One more question", conversation_id=str(conversation.id))

    html = member_client.post("/chat/budget", data=data).get_data(as_text=True)

    found = re.search(r"(\d+) earlier turns left out to fit", text_of(html))
    assert found is not None, text_of(html)
    left_out = int(found.group(1))
    assert 0 < left_out < 8
    assert "data-over-budget" not in html
    # What the meter says is what is sent: the send goes through with the same turns left out.
    sent = member_client.post(f"/c/{conversation.id}/messages", data=data)
    assert sent.status_code == 303


def test_the_meter_over_the_limit_carries_the_reason_for_the_send_button(
    member_client: FlaskClient, model: LLMModel
) -> None:
    html = member_client.post("/chat/budget", data=form(model, TOO_LONG)).get_data(as_text=True)

    reason = re.search(r'<span id="budget-reason"[^>]*data-over-budget[^>]*>(.*?)</span>', html)
    assert reason is not None
    assert four_numbers(reason.group(1))[2:] == (WINDOW, RESERVE)
    assert "shorten the message or pick a model with a larger window" in reason.group(1)


def test_the_admins_request_preview_leaves_out_the_same_turns(
    app: Flask, admin: User, model: LLMModel
) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    client = app.test_client()
    sign_in(client, ADMIN_EMAIL)
    conversation = conversation_of(admin, model, turns=8)
    data = form(model, "One more question", conversation_id=str(conversation.id))

    meter = text_of(client.post("/chat/budget", data=data).get_data(as_text=True))
    preview = text_of(client.post("/chat/request", data=data).get_data(as_text=True))

    left_out = re.search(r"(\d+) earlier turns left out", meter)
    assert left_out is not None
    assert f"{left_out.group(1)} earlier turns left out to fit the model's window" in preview
    assert '"content": "Q0"' not in preview
    assert '"content": "Q7"' in preview


# --- the setting ---------------------------------------------------------------------------------


def test_a_new_conversation_fits_its_history_and_the_composer_says_so(
    member_client: FlaskClient, model: LLMModel
) -> None:
    # The empty page has no conversation yet, so no setting to show.
    assert 'id="fit_history"' not in member_client.get("/").get_data(as_text=True)
    started = member_client.post("/c/new", data={})
    page = member_client.get(started.headers["Location"]).get_data(as_text=True)

    box = re.search(r'<input type="checkbox" id="fit_history"[^>]*>', page)
    assert box is not None and " checked" in box.group(0)
    assert "Fit long history automatically" in page


def test_turning_fitting_off_refuses_a_long_history_with_the_four_numbers(
    member_client: FlaskClient, member: User, model: LLMModel
) -> None:
    conversation = conversation_of(member, model, turns=8)

    off = member_client.post(f"/c/{conversation.id}/fit-history", data={}, headers=HX)

    assert off.status_code == 200
    assert json.loads(off.headers["HX-Trigger"]) == {"budget-refresh": {"target": "#budget"}}
    assert 'id="fit_history"' in off.get_data(as_text=True)
    assert " checked" not in off.get_data(as_text=True)
    _db.session.expire_all()
    assert _db.session.get(Conversation, conversation.id).fit_history is False
    data = form(model, "One more question", conversation_id=str(conversation.id))
    meter = text_of(member_client.post("/chat/budget", data=data).get_data(as_text=True))
    assert "left out" not in meter
    assert "turn on “Fit long history automatically”" in meter

    refused = member_client.post(f"/c/{conversation.id}/messages", data=data, headers=HX)

    assert refused.status_code == 422
    estimated, limit, window, reserve = four_numbers(refused.get_data(as_text=True))
    assert (limit, window, reserve) == (WINDOW - RESERVE, WINDOW, RESERVE)
    assert estimated > limit
    assert ">One more question</textarea>" in refused.get_data(as_text=True)
    assert count(ChatMessage) == 16

    on = member_client.post(f"/c/{conversation.id}/fit-history", data={"fit_history": "on"})

    assert on.status_code == 303
    assert on.headers["Location"].endswith(f"/c/{conversation.id}")
    sent = member_client.post(f"/c/{conversation.id}/messages", data=data)
    assert sent.status_code == 303
    assert count(ChatMessage) == 18


def test_another_users_setting_is_404_and_unchanged(
    member_client: FlaskClient, model: LLMModel
) -> None:
    other, errors = create_user("other@example.com", "correct horse battery")
    assert other is not None, errors
    theirs = conversation_of(other, model, turns=1)

    for headers in ({}, HX):
        response = member_client.post(f"/c/{theirs.id}/fit-history", data={}, headers=headers)
        assert response.status_code == 404
    _db.session.expire_all()
    assert _db.session.get(Conversation, theirs.id).fit_history is True


def test_the_setting_needs_the_csrf_token(
    app: Flask, member_client: FlaskClient, member: User, model: LLMModel
) -> None:
    conversation = conversation_of(member, model, turns=1)
    app.config["WTF_CSRF_ENABLED"] = True

    response = member_client.post(f"/c/{conversation.id}/fit-history", data={}, headers=HX)

    assert response.status_code == 400
    _db.session.expire_all()
    assert _db.session.get(Conversation, conversation.id).fit_history is True
