"""The chat pages through the Flask test client: empty states, sending and its validation,
ownership, rename / delete, the composer's memory, the budget meter, message fragments.

Streaming itself is over real HTTP in test_chat_stream_http.py.
"""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, event

from tests.support.factories import make_model, make_preset, make_provider
from tests.support.users import session_of
from webapp.extensions import db as _db
from webapp.models import ChatMessage, Conversation, LLMModel, User
from webapp.models.types import utcnow
from webapp.services import conversations as chats
from webapp.services import (
    replies,
    reply_limits,
    reply_recorder,
    reply_runs,
    reply_states,
    run_chat,
)
from webapp.services.chat import preview_prompt_budget
from webapp.services.presets import default_preset_of

HX = {"HX-Request": "true"}


@pytest.fixture
def model(app: Flask) -> LLMModel:
    provider = make_provider(name="Acme")
    model = make_model(provider, model="acme-1", name="Acme One", enabled=True)
    make_preset(model, key="default", name="Balanced", llm_options_overrides={"max_tokens": 64})
    make_preset(model, key="wild", name="Wild", llm_options_overrides={"temperature": 1.5})
    return model


@pytest.fixture
def member_user(member: Any) -> User:
    return member


def form(model: LLMModel, content: str = "Hello there", **fields: Any) -> dict[str, str]:
    return {"llm_model_id": str(model.id), "llm_preset_id": "", "content": content, **fields}


def new_conversation(client: FlaskClient, model: LLMModel, content: str = "Hello there") -> int:
    response = client.post("/c/new", data=form(model, content))
    assert response.status_code == 303, response.get_data(as_text=True)
    return int(response.headers["Location"].rsplit("/", 1)[1])


def messages_of(conversation_id: int) -> list[ChatMessage]:
    _db.session.expire_all()
    return list(
        _db.session.scalars(
            _db.select(ChatMessage)
            .where(ChatMessage.conversation_id == conversation_id)
            .order_by(ChatMessage.id)
        )
    )


def text_of(page: str) -> str:
    """The words a reader sees: tags dropped, entities decoded, whitespace collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", "", page)).split())


def other_users_conversation(model: LLMModel) -> Conversation:
    from webapp.services.users import create_user

    other, errors = create_user("other@example.com", "correct horse battery")
    assert other is not None, errors
    conversation = Conversation(user_id=other.id, title="Private plans")
    _db.session.add(conversation)
    _db.session.commit()
    choice, _ = chats.choose(chats.Draft(llm_model_id=model.id, content="secret"))
    assert choice is not None
    chats.add_turn(conversation, choice)
    return conversation


# --- pages and empty states ------------------------------------------------------------


def test_home_page_shows_the_new_chat_state(member_client: FlaskClient, model: LLMModel) -> None:
    page = member_client.get("/").get_data(as_text=True)

    assert "<title>New chat · ModelDesk</title>" in page
    assert "Start a new chat" in page
    assert "No conversations yet" in page
    assert 'action="/c/new"' in page
    assert '<label for="llm_model_id">Model</label>' in page
    assert '<label for="llm_preset_id">Preset</label>' in page
    assert '<label for="content" class="visually-hidden">Message</label>' in page
    assert "data-enter-submits" in page
    assert re.search(r'<option value="\d+" selected>Balanced \(default\)</option>', page)
    assert 'href="/static/chat.css"' in page and 'src="/static/chat.js"' in page


def test_without_an_enabled_model_the_page_says_what_to_do(
    member_client: FlaskClient, app: Flask
) -> None:
    make_model(make_provider(), enabled=False)

    page = member_client.get("/").get_data(as_text=True)

    assert "No model is enabled yet" in page
    assert "Ask an admin to enable a model" in page
    assert re.search(r'<button type="submit" class="primary send" disabled>', page)


def test_chat_needs_sign_in(client: FlaskClient, app: Flask) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_models_are_grouped_by_provider_and_only_enabled_ones_listed(
    member_client: FlaskClient, model: LLMModel
) -> None:
    other = make_provider(name="Beta")
    make_model(other, model="b-1", name="Beta Enabled", enabled=True)
    make_model(other, model="b-2", name="Beta Disabled", enabled=False)

    page = member_client.get("/").get_data(as_text=True)

    groups = re.findall(r'<optgroup label="([^"]+)">', page)
    assert groups == ["Acme", "Beta"]
    assert "Beta Enabled" in page
    assert "Beta Disabled" not in page


def test_home_shows_the_newest_conversation(member_client: FlaskClient, model: LLMModel) -> None:
    new_conversation(member_client, model, "older one")
    newest = new_conversation(member_client, model, "newer one")

    page = member_client.get("/").get_data(as_text=True)

    assert f'action="/c/{newest}/messages"' in page
    titles = re.findall(r'<a href="/c/\d+"[^>]*>([^<]+)</a>', page)
    assert titles == ["newer one", "older one"]


# --- sending -----------------------------------------------------------------------------


def test_first_message_creates_a_conversation_with_a_pending_reply(
    member_client: FlaskClient, model: LLMModel, member_user: User
) -> None:
    conversation_id = new_conversation(member_client, model, "What is <b>SSE</b>?")

    user_message, reply = messages_of(conversation_id)
    assert (user_message.role, user_message.content) == ("user", "What is <b>SSE</b>?")
    assert (reply.role, reply.status) == ("assistant", "pending")
    assert (reply.model_name, reply.preset_name) == ("Acme One", "Balanced")
    conversation = _db.session.get(Conversation, conversation_id)
    assert conversation.user_id == member_user.id
    assert conversation.title == "What is <b>SSE</b>?"
    assert conversation.llm_model_id == model.id
    page = member_client.get(f"/c/{conversation_id}").get_data(as_text=True)
    assert "What is &lt;b&gt;SSE&lt;/b&gt;?" in page
    assert f'sse-connect="/messages/{reply.id}/stream"' in page
    assert 'sse-close="end"' in page
    assert 'sse-swap="delta" hx-swap="beforeend"' in page
    assert f'sse-swap="end" hx-target="#message-{reply.id}" hx-swap="outerHTML"' in page


def test_a_reply_remembers_its_model_and_preset_and_outlives_their_deletion(
    member_client: FlaskClient, model: LLMModel
) -> None:
    conversation_id = new_conversation(member_client, model, "Who are you?")
    reply = messages_of(conversation_id)[1]
    preset_id = default_preset_of(model.id).id
    assert (reply.llm_model_id, reply.llm_preset_id) == (model.id, preset_id)
    reply.status, reply.content = "complete", "Acme here."
    _db.session.commit()

    _db.session.delete(model)
    _db.session.commit()

    reply = messages_of(conversation_id)[1]
    assert (reply.llm_model_id, reply.llm_preset_id, reply.content) == (None, None, "Acme here.")
    page = text_of(member_client.get(f"/c/{conversation_id}").get_data(as_text=True))
    assert "Acme One (deleted model)" in page and "Acme here." in page


def test_sending_returns_both_bubbles_and_updates_the_list(
    member_client: FlaskClient, model: LLMModel
) -> None:
    conversation_id = new_conversation(member_client, model)

    response = member_client.post(
        f"/c/{conversation_id}/messages", data=form(model, "Second"), headers=HX
    )

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    _, _, user_message, reply = messages_of(conversation_id)
    assert f'id="message-{user_message.id}"' in html
    assert f'id="message-{reply.id}"' in html
    assert f"/messages/{reply.id}/stream" in html
    assert 'id="conversation-list" class="conversation-list" hx-swap-oob="true"' in html


def test_sending_without_htmx_redirects_to_the_conversation(
    member_client: FlaskClient, model: LLMModel
) -> None:
    conversation_id = new_conversation(member_client, model)

    response = member_client.post(f"/c/{conversation_id}/messages", data=form(model, "Again"))

    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/c/{conversation_id}")


def test_long_first_message_makes_a_short_title(
    member_client: FlaskClient, model: LLMModel
) -> None:
    text = "Please explain how server-sent events work in browsers and servers, in detail"
    conversation_id = new_conversation(member_client, model, text)

    title = _db.session.get(Conversation, conversation_id).title
    assert title == "Please explain how server-sent events work in browsers and…"
    assert len(title) <= 61


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"llm_model_id": ""}, "llm_model_id", "Choose a model."),
        ({"llm_model_id": "abc"}, "llm_model_id", "Choose a model."),
        ({"llm_model_id": "-3"}, "llm_model_id", "Choose a model."),
        ({"llm_model_id": "99999999999999999999999"}, "llm_model_id", "Choose a model."),
        ({"llm_model_id": "424242"}, "llm_model_id", "Choose a model."),
        ({"content": "   \n  "}, "content", "Type a message first."),
        ({"content": "x" * 100_001}, "content", "The message is too long"),
        ({"llm_preset_id": "nope"}, "llm_preset_id", "Choose one of the presets of Acme One."),
        ({"llm_preset_id": "777777"}, "llm_preset_id", "Choose one of the presets of Acme One."),
        ({"system_prompt": "s" * 20_001}, "system_prompt", "The system prompt is too long"),
    ],
)
def test_invalid_input_comes_back_as_errors_with_the_text_kept(
    member_client: FlaskClient, model: LLMModel, fields: dict[str, str], field: str, message: str
) -> None:
    conversation_id = new_conversation(member_client, model)
    data = {**form(model, "keep me please", system_prompt="be kind"), **fields}

    for headers in ({}, HX):
        response = member_client.post(f"/c/{conversation_id}/messages", data=data, headers=headers)

        assert response.status_code == 422
        html = response.get_data(as_text=True)
        assert message in html
        assert f'id="{field}-error"' in html
        assert 'aria-invalid="true"' in html
        if field != "content":
            assert ">keep me please</textarea>" in html
        if field != "system_prompt":
            assert ">be kind</textarea>" in html
    assert response.headers["HX-Retarget"] == "#composer"
    assert response.headers["HX-Reswap"] == "outerHTML"
    assert len(messages_of(conversation_id)) == 2


def test_a_disabled_model_or_another_models_preset_is_refused(
    member_client: FlaskClient, model: LLMModel
) -> None:
    conversation_id = new_conversation(member_client, model)
    disabled = make_model(model.llm_provider, model="acme-0", name="Old Acme", enabled=False)
    foreign = make_preset(disabled, key="default", name="Other")

    response = member_client.post(f"/c/{conversation_id}/messages", data=form(disabled))
    assert response.status_code == 422
    assert "Old Acme is disabled: choose another model." in response.get_data(as_text=True)

    response = member_client.post(
        f"/c/{conversation_id}/messages", data=form(model, llm_preset_id=str(foreign.id))
    )
    assert response.status_code == 422
    assert "Choose one of the presets of Acme One." in response.get_data(as_text=True)


def test_first_message_errors_keep_the_empty_page(
    member_client: FlaskClient, model: LLMModel
) -> None:
    response = member_client.post("/c/new", data=form(model, "  "), headers=HX)

    assert response.status_code == 422
    assert "Type a message first." in response.get_data(as_text=True)
    assert _db.session.scalar(_db.select(_db.func.count()).select_from(Conversation)) == 0


def test_a_request_body_over_the_limit_is_refused_without_a_500(
    member_client: FlaskClient, model: LLMModel
) -> None:
    response = member_client.post("/c/new", data=form(model, "x" * 3 * 1024 * 1024))
    assert response.status_code == 413


def test_nul_characters_are_refused_next_to_the_field_with_the_text_kept(
    member_client: FlaskClient, model: LLMModel
) -> None:
    # PostgreSQL refuses NUL in text: the one rule for user text is a field error, never a
    # 500 and never a silent change of what was typed.
    conversation_id = new_conversation(member_client, model)
    sent = member_client.post(
        f"/c/{conversation_id}/messages", data=form(model, "a\x00b", system_prompt="s\x00")
    )
    assert sent.status_code == 422
    page = text_of(sent.get_data(as_text=True))
    assert "The message must not contain NUL" in page
    assert "The system prompt must not contain NUL" in page
    assert len(messages_of(conversation_id)) == 2

    renamed = member_client.post(f"/c/{conversation_id}/rename", data={"title": "x\x00y"})
    assert renamed.status_code == 422
    assert "must not contain NUL" in text_of(renamed.get_data(as_text=True))
    assert _db.session.get(Conversation, conversation_id).title == "Hello there"


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.dictionaries(
        st.sampled_from(["llm_model_id", "llm_preset_id", "system_prompt", "content", "title"]),
        st.text(max_size=30) | st.integers(-(2**70), 2**70).map(str),
    )
)
def test_nothing_a_user_can_type_causes_a_server_error(
    member_client: FlaskClient, model: LLMModel, data: dict[str, str]
) -> None:
    conversation_id = new_conversation(member_client, model)
    for path in (
        "/c/new",
        f"/c/{conversation_id}/messages",
        f"/c/{conversation_id}/rename",
        "/chat/budget",
    ):
        response = member_client.post(path, data=data)
        assert response.status_code < 500, (path, data)
    response = member_client.get("/chat/presets", query_string=data)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "path",
    ["/c/99999999999999999999", "/messages/99999999999999999999", "/c/2147483648", "/c/0"],
)
def test_ids_that_cannot_exist_are_404(member_client: FlaskClient, path: str) -> None:
    assert member_client.get(path).status_code == 404


# --- ownership ---------------------------------------------------------------------------


def test_another_users_conversation_and_messages_are_404(
    member_client: FlaskClient, model: LLMModel
) -> None:
    theirs = other_users_conversation(model)
    _, reply = messages_of(theirs.id)
    cid, mid = theirs.id, reply.id

    assert member_client.get(f"/c/{cid}").status_code == 404
    assert member_client.post(f"/c/{cid}/messages", data=form(model)).status_code == 404
    assert member_client.post(f"/c/{cid}/rename", data={"title": "Mine"}).status_code == 404
    assert member_client.post(f"/c/{cid}/delete").status_code == 404
    assert member_client.get(f"/messages/{mid}").status_code == 404
    assert member_client.get(f"/messages/{mid}/stream").status_code == 404
    assert member_client.post(f"/messages/{mid}/stop").status_code == 404
    budget = member_client.post("/chat/budget", data=form(model, conversation_id=str(cid)))
    assert budget.status_code == 200
    _db.session.expire_all()
    assert _db.session.get(Conversation, cid).title == "Private plans"
    assert [m.status for m in messages_of(cid)] == ["complete", "pending"]
    page = member_client.get("/").get_data(as_text=True)
    assert "Private plans" not in page


# --- rename and delete -------------------------------------------------------------------


def test_rename_changes_the_title(member_client: FlaskClient, model: LLMModel) -> None:
    conversation_id = new_conversation(member_client, model)

    response = member_client.post(
        f"/c/{conversation_id}/rename", data={"title": "  Plans   for  May "}
    )

    assert response.status_code == 303
    _db.session.expire_all()
    assert _db.session.get(Conversation, conversation_id).title == "Plans for May"
    page = member_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Conversation renamed." in page
    assert "<title>Plans for May · ModelDesk</title>" in page


@pytest.mark.parametrize(
    ("title", "error"), [("   ", "can't be blank"), ("t" * 201, "is too long")]
)
def test_rename_errors_keep_the_typed_title(
    member_client: FlaskClient, model: LLMModel, title: str, error: str
) -> None:
    conversation_id = new_conversation(member_client, model, "Original")

    response = member_client.post(f"/c/{conversation_id}/rename", data={"title": title})

    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert f"Title {error}" in unescape(html)
    assert f'value="{title}"' in html
    assert f'id="title-{conversation_id}-error"' in html
    _db.session.expire_all()
    assert _db.session.get(Conversation, conversation_id).title == "Original"


def test_delete_removes_the_conversation_and_its_messages(
    member_client: FlaskClient, model: LLMModel
) -> None:
    conversation_id = new_conversation(member_client, model, "Doomed chat")

    response = member_client.post(f"/c/{conversation_id}/delete")

    assert response.status_code == 303
    assert response.headers["Location"].endswith("/")
    assert _db.session.get(Conversation, conversation_id) is None
    assert messages_of(conversation_id) == []
    page = member_client.get("/").get_data(as_text=True)
    assert "Deleted “Doomed chat”." in page
    assert "data-confirm=" not in page  # no conversation left to delete
    assert member_client.get(f"/c/{conversation_id}").status_code == 404


def test_a_conversation_deleted_by_another_tab_while_its_replies_stop_is_no_error(
    member_client: FlaskClient, model: LLMModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversation_id = new_conversation(member_client, model, "Deleted twice")

    def the_other_tab_deletes_it_meanwhile(_where: Any) -> None:
        # The other tab's request, on a connection of its own; then the commit stopping makes
        # in this one (the request's objects expire), as it waits.
        with _db.engine.begin() as other_tab:
            other_tab.execute(delete(Conversation).where(Conversation.id == conversation_id))
        _db.session.commit()

    monkeypatch.setattr(reply_runs, "stop_unfinished", the_other_tab_deletes_it_meanwhile)

    response = member_client.post(f"/c/{conversation_id}/delete", headers=HX)

    assert response.status_code == 204
    assert _db.session.get(Conversation, conversation_id) is None


def test_delete_and_rename_from_htmx_use_hx_location(
    member_client: FlaskClient, model: LLMModel
) -> None:
    conversation_id = new_conversation(member_client, model)

    response = member_client.post(f"/c/{conversation_id}/delete", headers=HX)

    assert response.status_code == 204
    assert response.headers["HX-Location"] == "/"


def test_new_chat_reuses_an_empty_conversation(member_client: FlaskClient, model: LLMModel) -> None:
    first = member_client.post("/c/new")
    second = member_client.post("/c/new")

    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    page = member_client.get(first.headers["Location"]).get_data(as_text=True)
    assert "Start the conversation" in page


# --- the composer remembers -------------------------------------------------------------


def test_the_composer_remembers_model_preset_and_system_prompt_per_conversation(
    member_client: FlaskClient, model: LLMModel
) -> None:
    wild = next(p for p in model.llm_presets if p.key == "wild")
    other = make_model(model.llm_provider, model="acme-2", name="Acme Two", enabled=True)
    first = new_conversation(member_client, model)
    member_client.post(
        f"/c/{first}/messages",
        data=form(model, "more", llm_preset_id=str(wild.id), system_prompt="Answer in haiku."),
    )
    second = member_client.post("/c/new", data=form(other, "hi")).headers["Location"]

    page = member_client.get(f"/c/{first}").get_data(as_text=True)
    assert f'<option value="{model.id}" selected>Acme One</option>' in page
    assert f'<option value="{wild.id}" selected>Wild</option>' in page
    assert ">Answer in haiku.</textarea>" in page
    page = member_client.get(second).get_data(as_text=True)
    assert f'<option value="{other.id}" selected>Acme Two</option>' in page
    assert "None (provider defaults)" in page


def test_presets_endpoint_lists_the_models_presets_default_first_and_selected(
    member_client: FlaskClient, model: LLMModel
) -> None:
    html = member_client.get(f"/chat/presets?llm_model_id={model.id}").get_data(as_text=True)

    options = re.findall(r'<option value="(\d*)"( selected)?>([^<]+)</option>', html)
    assert [(name, bool(selected)) for _, selected, name in options] == [
        ("Balanced (default)", True),
        ("Wild", False),
    ]
    assert 'id="preset-field"' in html
    bare = make_model(model.llm_provider, model="acme-9", name="Bare", enabled=True)
    html = member_client.get(f"/chat/presets?llm_model_id={bare.id}").get_data(as_text=True)
    assert '<option value="" selected>None (provider defaults)</option>' in html


# --- the budget meter ----------------------------------------------------------------------


def budget_numbers(html: str) -> tuple[int, int] | None:
    found = re.search(r"≈ ([\d,]+) / ([\d,]+) tokens", html)
    return (
        (int(found.group(1).replace(",", "")), int(found.group(2).replace(",", "")))
        if found
        else None
    )


def test_budget_numbers_are_the_services_numbers(
    member_client: FlaskClient, model: LLMModel
) -> None:
    model.context_window_tokens = 120
    _db.session.commit()
    conversation_id = new_conversation(member_client, model, "An earlier question")
    [_, reply] = messages_of(conversation_id)
    reply.status, reply.content = "complete", "An earlier answer with a few words"
    _db.session.commit()
    draft = "How many tokens is this draft, roughly? " * 3
    data = form(model, draft, system_prompt="Be brief.", conversation_id=str(conversation_id))

    html = member_client.post("/chat/budget", data=data).get_data(as_text=True)

    history = [
        {"role": "user", "content": "An earlier question"},
        {"role": "assistant", "content": "An earlier answer with a few words"},
    ]
    expected = preview_prompt_budget(model, user_text=draft, history=history, system="Be brief.")
    assert expected.success
    assert budget_numbers(html) == (expected.value["estimated_tokens"], 120 - 64)
    assert "Too long" not in html
    # Too long even with the earlier turn left out: the numbers the reply is refused with,
    # those of the prompt that cannot be shortened (system prompt and message).
    long_draft = draft * 4
    html = member_client.post("/chat/budget", data={**data, "content": long_draft}).get_data(
        as_text=True
    )
    refusal = run_chat(model, user_text=long_draft, history=[], system="Be brief.")
    assert refusal.code == "PROMPT_TOO_LONG"
    numbers = refusal.value
    assert budget_numbers(html) == (numbers["estimated_tokens"], numbers["limit_tokens"])
    assert 'class="budget-numbers over" data-over-budget' in html
    assert (
        f"Too long for Acme One: ≈ {numbers['estimated_tokens']} / {numbers['limit_tokens']} "
        f"tokens (context window {numbers['max_tokens']} − {numbers['reserve_tokens']} reserved "
        "for the reply) — shorten the message or pick a model with a larger window."
    ) in text_of(html)


def test_budget_without_a_window_says_no_limit(member_client: FlaskClient, model: LLMModel) -> None:
    html = member_client.post("/chat/budget", data=form(model, "hello")).get_data(as_text=True)

    expected = preview_prompt_budget(model, user_text="hello")
    assert f"≈ {expected.value['estimated_tokens']} tokens · no limit" in html


def test_budget_edge_cases_answer_in_words(member_client: FlaskClient, model: LLMModel) -> None:
    def budget(**fields: str) -> str:
        response = member_client.post("/chat/budget", data=form(model, **fields))
        assert response.status_code == 200
        return text_of(response.get_data(as_text=True))

    assert budget(content="") == "Token estimate appears as you type"
    assert budget(llm_model_id="x") == "Choose a model."
    other = make_model(model.llm_provider, model="acme-3", name="Acme Three", enabled=True)
    foreign = make_preset(other, key="default", name="Theirs")
    # A preset of another model (the preset list not yet swapped): the default is used.
    assert "no limit" in budget(llm_preset_id=str(foreign.id))


def test_preview_prompt_budget_reports_failures_like_prepare_chat(
    app: Flask, model: LLMModel
) -> None:
    model.enabled = False
    assert preview_prompt_budget(model, user_text="x").code == "MODEL_DISABLED"
    model.enabled = True
    assert preview_prompt_budget(model, user_text=" ").code == "EMPTY_PROMPT"
    assert preview_prompt_budget(model, user_text="x", preset_key="nope").code == (
        "PRESET_NOT_FOUND"
    )
    result = preview_prompt_budget(model, user_text="x", llm_options={"max_tokens": 5})
    assert result.success
    assert result.value["reserve_tokens"] == 5
    assert result.value["exceeded"] is False


# --- messages as fragments -------------------------------------------------------------


def test_a_reply_still_streaming_follows_its_stream_and_a_finished_one_shows_markdown(
    member_client: FlaskClient, model: LLMModel
) -> None:
    conversation_id = new_conversation(member_client, model)
    [_, reply] = messages_of(conversation_id)
    reply.status = "streaming"
    reply.content = "so far"
    _db.session.commit()

    html = member_client.get(f"/messages/{reply.id}").get_data(as_text=True)
    # The text so far comes with the stream (from the first character), not twice.
    assert f'sse-connect="/messages/{reply.id}/stream"' in html
    assert "data-stop" in html
    assert "so far" not in html

    reply.status = "complete"
    reply.content = "**bold** <script>alert(1)</script> [x](javascript:alert(1))"
    reply.usage = {"prompt_tokens": 10, "completion_tokens": 20}
    reply.ttft_ms, reply.total_ms = 100.0, 1100.0
    _db.session.commit()
    html = member_client.get(f"/messages/{reply.id}").get_data(as_text=True)
    # No more polling; the last turn's controls are fetched once (as after a stream's end).
    assert f'hx-get="/messages/{reply.id}"' not in html
    assert 'hx-trigger="load delay:500ms"' not in html
    assert f'hx-get="/messages/{reply.id}/actions" hx-trigger="load"' in html
    assert "<strong>bold</strong>" in html
    assert "<script" not in html and "javascript:" not in html.replace("[x](javascript:", "")
    assert "10 → 20 tokens" in html
    assert "first token 100 ms" in html
    assert "20.0 tok/s" in html
    assert "Acme One" in html and "Balanced" in html


@pytest.mark.parametrize(
    ("code", "text", "shown"),
    [
        ("MODEL_DISABLED", "Acme One is disabled", "Model disabled: Acme One is disabled."),
        (
            "PRESET_NOT_FOUND",
            "the preset chosen for this reply no longer exists",
            "Preset not found: the preset chosen for this reply no longer exists.",
        ),
        (
            "LLM_REQUEST_FAILED",
            "the provider answered HTTP 503: overloaded",
            "The provider request failed: the provider answered HTTP 503: overloaded.",
        ),
    ],
)
def test_errors_read_as_sentences_with_their_code(
    member_client: FlaskClient, model: LLMModel, code: str, text: str, shown: str
) -> None:
    conversation_id = new_conversation(member_client, model)
    [_, reply] = messages_of(conversation_id)
    reply.status, reply.error_code, reply.error_text = "error", code, text
    _db.session.commit()

    html = member_client.get(f"/c/{conversation_id}").get_data(as_text=True)

    assert shown in text_of(html)
    assert f"<code>{code}</code>" in html
    assert '<span class="badge err">Error</span>' in html


def test_prompt_too_long_shows_its_four_numbers(
    member_client: FlaskClient, model: LLMModel
) -> None:
    conversation_id = new_conversation(member_client, model)
    [_, reply] = messages_of(conversation_id)
    reply.status, reply.error_code = "error", "PROMPT_TOO_LONG"
    reply.details = {
        "budget": {
            "estimated_tokens": 140,
            "max_tokens": 128,
            "reserve_tokens": 64,
            "limit_tokens": 64,
        }
    }
    _db.session.commit()

    html = member_client.get(f"/messages/{reply.id}").get_data(as_text=True)

    assert "estimated 140 tokens, limit 64 = window 128 − reserve 64" in text_of(html)


def test_stop_before_the_stream_starts_marks_the_reply_stopped(
    member_client: FlaskClient, model: LLMModel
) -> None:
    conversation_id = new_conversation(member_client, model)
    [_, reply] = messages_of(conversation_id)

    response = member_client.post(f"/messages/{reply.id}/stop", headers=HX)

    assert response.status_code == 200
    assert "Stopped" in response.get_data(as_text=True)
    assert messages_of(conversation_id)[1].status == "stopped"
    # …and its stream will never run.
    assert member_client.get(f"/messages/{reply.id}/stream").status_code == 204


def test_a_reply_abandoned_mid_stream_is_settled_as_incomplete(
    member_client: FlaskClient, model: LLMModel
) -> None:
    conversation_id = new_conversation(member_client, model)
    [_, reply] = messages_of(conversation_id)
    reply.status, reply.content = "streaming", "half a"
    _db.session.commit()
    _db.session.execute(
        _db.update(ChatMessage)
        .where(ChatMessage.id == reply.id)
        .values(updated_at=utcnow() - timedelta(minutes=10))
    )
    _db.session.commit()

    html = member_client.get(f"/c/{conversation_id}").get_data(as_text=True)

    assert "Incomplete" in html
    message = messages_of(conversation_id)[1]
    assert (message.status, message.content) == ("incomplete", "half a")


def test_every_page_loads_the_chat_and_config_assets(admin_client: FlaskClient) -> None:
    """A boosted link swaps only the body, so each page's <head> must already hold what any
    page needs: arriving at the chat from the models page keeps chat.js working."""
    for path in ("/", "/models/", "/providers/"):
        html = admin_client.get(path).get_data(as_text=True)
        for asset in ("chat.js", "chat.css", "config.css", "app.js"):
            assert f"/static/{asset}" in html, (path, asset)


# --- the transcript service ----------------------------------------------------------------


def test_history_keeps_turns_whose_reply_was_seen(app: Flask, model: LLMModel, member: Any) -> None:
    conversation = Conversation(user_id=member.id, title="t")
    _db.session.add(conversation)
    _db.session.commit()
    outcomes = [
        ("complete", "answer one"),
        ("error", ""),
        ("stopped", "half"),
        ("stopped", ""),
        ("incomplete", "cut"),
        ("streaming", "still going"),
    ]
    for number, (status, content) in enumerate(outcomes):
        _db.session.add_all(
            [
                ChatMessage(conversation_id=conversation.id, role="user", content=f"q{number}"),
                ChatMessage(
                    conversation_id=conversation.id,
                    role="assistant",
                    status=status,
                    content=content,
                ),
            ]
        )
    _db.session.commit()

    history = chats.history_before(conversation.id)

    assert history == [
        {"role": "user", "content": "q0"},
        {"role": "assistant", "content": "answer one"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "half"},
        {"role": "user", "content": "q4"},
        {"role": "assistant", "content": "cut"},
    ]


def test_the_conversation_list_is_one_query(
    member_client: FlaskClient, model: LLMModel, member_user: User
) -> None:
    for number in range(5):
        new_conversation(member_client, model, f"chat {number}")
    user_id = member_user.id

    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(_db.engine, "before_cursor_execute", count)
    try:
        chats.list_conversations(user_id)
        chats.enabled_models()
    finally:
        event.remove(_db.engine, "before_cursor_execute", count)
    assert len(statements) == 2


def test_the_recorder_saves_text_as_it_streams_and_once_at_the_end(
    member_client: FlaskClient, model: LLMModel
) -> None:
    conversation_id = new_conversation(member_client, model)
    [_, reply] = messages_of(conversation_id)
    owner = reply.conversation.user_id
    assert reply_states.claim_own(reply.id, session_of(owner)) is not None
    assert reply_states.claim_own(reply.id, session_of(owner)) is None
    recorder = reply_recorder.ReplyRecorder(
        _db.engine, reply.id, model_name="Acme One", preset_name="Balanced", checkpoint_seconds=0
    )

    recorder.add("Hello, ")
    recorder.add("world")

    saved = messages_of(conversation_id)[1]
    assert (saved.status, saved.content) == ("streaming", "Hello, world")
    stopped = recorder.stop()
    assert (stopped.status, stopped.content) == ("stopped", "Hello, world")
    assert stopped.ttft_ms is not None and stopped.total_ms >= stopped.ttft_ms
    # Saved once: a later outcome does not overwrite it.
    assert recorder.fail("late").status == "stopped"
    assert messages_of(conversation_id)[1].status == "stopped"


def test_a_reply_whose_conversation_was_deleted_still_ends_cleanly(
    member_client: FlaskClient, model: LLMModel
) -> None:
    conversation_id = new_conversation(member_client, model)
    reply_id = messages_of(conversation_id)[1].id
    owner = messages_of(conversation_id)[1].conversation.user_id
    assert reply_states.claim_own(reply_id, session_of(owner)) is not None
    recorder = reply_recorder.ReplyRecorder(_db.engine, reply_id, model_name="m", preset_name=None)
    member_client.post(f"/c/{conversation_id}/delete")

    recorder.add("orphan")
    final = recorder.stop()

    assert (final.status, final.content) == ("stopped", "orphan")
    assert _db.session.get(ChatMessage, reply_id) is None


def test_a_failure_on_our_side_mid_stream_still_ends_and_saves(
    app: Flask, member_client: FlaskClient, model: LLMModel
) -> None:
    from webapp.blueprints.chat import _frames
    from webapp.llm.run import ChatStream
    from webapp.services import StreamEvent

    conversation_id = new_conversation(member_client, model)
    reply_id = messages_of(conversation_id)[1].id
    owner = messages_of(conversation_id)[1].conversation.user_id
    assert reply_states.claim_own(reply_id, session_of(owner)) is not None
    recorder = reply_recorder.ReplyRecorder(_db.engine, reply_id, model_name="m", preset_name=None)

    def events() -> Any:
        yield StreamEvent("delta", content="partial <text>")
        raise RuntimeError("boom")

    with app.test_request_context():
        reply = replies.ReplyStream(
            ChatStream(events()), recorder, reply_limits.ReplyLimits(), on_close=lambda: None
        )
        frames = list(_frames(reply, "started"))

    assert frames[0].startswith(":")
    assert frames[1] == "event: delta\ndata: partial &lt;text&gt;\n\n"
    assert frames[2].startswith("event: end\n") and "Incomplete" in frames[2]
    saved = messages_of(conversation_id)[1]
    assert (saved.status, saved.content, saved.error_code) == (
        "incomplete",
        "partial <text>",
        "INTERNAL_ERROR",
    )


# --- replies that belong to the server: what a run must never do -----------------------------


def test_a_reply_never_writes_into_a_later_message_given_its_id(
    member_client: FlaskClient, model: LLMModel, member: User
) -> None:
    """SQLite gives a deleted message's id to the next one: a reply still running when its
    conversation was deleted must not save itself into that new message."""
    conversation_id = new_conversation(member_client, model)
    reply_id = messages_of(conversation_id)[1].id
    claimed = reply_states.claim_own(reply_id, session_of(member.id))
    assert claimed is not None
    recorder = reply_recorder.ReplyRecorder(
        _db.engine,
        reply_id,
        model_name="m",
        preset_name=None,
        details={},
        created_at=claimed.created_at,
    )
    _db.session.execute(_db.delete(ChatMessage).where(ChatMessage.id == reply_id))
    _db.session.commit()
    later = ChatMessage(
        id=reply_id,
        conversation_id=conversation_id,
        role="assistant",
        status="streaming",
        content="someone else's",
        created_at=claimed.created_at + timedelta(seconds=1),
    )
    _db.session.add(later)
    _db.session.commit()

    recorder.add("stale text")
    recorder.stop()

    [_, saved] = messages_of(conversation_id)
    assert (saved.status, saved.content) == ("streaming", "someone else's")


def test_a_reply_that_fails_after_its_claim_is_not_left_streaming(
    member_client: FlaskClient, model: LLMModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversation_id = new_conversation(member_client, model)
    reply_id = messages_of(conversation_id)[1].id

    def broken(_message: Any) -> Any:
        raise RuntimeError("the request could not be built")

    monkeypatch.setattr(replies, "reply_prompt", broken)
    assert member_client.get(f"/messages/{reply_id}/stream").status_code == 500

    saved = messages_of(conversation_id)[1]
    assert (saved.status, saved.error_code) == ("error", "INTERNAL_ERROR")
    assert member_client.get(f"/messages/{reply_id}/stream").status_code == 204


def test_following_a_reply_whose_writer_died_ends_it_as_incomplete(
    member_client: FlaskClient, model: LLMModel
) -> None:
    """Claimed by a process that is gone (no run here, nothing written for long): the page
    following it settles it instead of waiting forever."""
    conversation_id = new_conversation(member_client, model)
    reply = messages_of(conversation_id)[1]
    reply.status, reply.content = "streaming", "half an answer"
    _db.session.commit()
    _db.session.execute(
        _db.update(ChatMessage)
        .where(ChatMessage.id == reply.id)
        .values(updated_at=utcnow() - timedelta(hours=1))
    )
    _db.session.commit()

    body = member_client.get(f"/messages/{reply.id}/stream").get_data(as_text=True)

    assert "event: delta\ndata: half an answer" in body
    assert "event: end" in body and "Incomplete" in body
    assert messages_of(conversation_id)[1].status == "incomplete"
