"""Search and export over real HTTP (`live_server`): the sidebar's search box as htmx and
as a plain form, and a conversation taken away as Markdown and as JSON."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

import httpx2
import pytest

from tests.support.app import LiveServer
from tests.support.users import signed_in_client
from webapp.extensions import db as _db
from webapp.models import ChatMessage, Conversation
from webapp.services.users import create_user

# What htmx sends for the search box: a fragment aimed at the conversation list.
SEARCH_HX = {"HX-Request": "true", "HX-Target": "conversation-list"}


def conversation_of(user_id: int, title: str, *messages: dict[str, Any]) -> int:
    conversation = Conversation(user_id=user_id, title=title, system_prompt=None)
    _db.session.add(conversation)
    _db.session.flush()
    for values in messages:
        _db.session.add(ChatMessage(conversation_id=conversation.id, **values))
    _db.session.commit()
    return conversation.id


def question(content: str) -> dict[str, Any]:
    return {"role": "user", "content": content, "status": "complete"}


def answer(content: str, **values: Any) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": content,
        "status": "complete",
        "model_name": "Acme One",
        "preset_name": "Balanced",
        "usage": {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42},
        "ttft_ms": 120.0,
        "total_ms": 1620.0,
        **values,
    }


def links_in(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'href="/c/(\d+)"', html)]


@pytest.fixture
def other_user(app: Any) -> Any:
    user, errors = create_user("other@example.com", "correct horse battery")
    assert user is not None, errors
    return user


# --- search ------------------------------------------------------------------------------


def test_typing_in_the_search_box_answers_the_matching_conversations(
    member_http: httpx2.Client, member: Any, other_user: Any
) -> None:
    garden = conversation_of(member.id, "Garden plans", question("Which <b>roses</b>?"))
    roses = conversation_of(member.id, "Untitled", question("x"), answer("Plant roses in May"))
    conversation_of(member.id, "Taxes", question("receipts"))
    conversation_of(other_user.id, "Their roses", question("roses roses"))

    response = member_http.get("/chat/search", params={"q": "ros"}, headers=SEARCH_HX)

    assert response.status_code == 200
    fragment = response.text
    assert fragment.lstrip().startswith('<ul id="conversation-list"')
    assert sorted(links_in(fragment)) == sorted([garden, roses])
    assert "Their roses" not in fragment
    # The user's text is escaped; only the match is marked.
    assert "&lt;b&gt;<mark>roses</mark>&lt;/b&gt;" in fragment
    assert "<mark>roses</mark> in May" in fragment
    assert "<b>" not in fragment


def test_an_emptied_search_box_brings_the_list_back(
    member_http: httpx2.Client, member: Any
) -> None:
    first = conversation_of(member.id, "First", question("a"))
    second = conversation_of(member.id, "Second", question("b"))

    response = member_http.get(
        "/chat/search", params={"q": "  ", "conversation_id": str(first)}, headers=SEARCH_HX
    )

    assert response.status_code == 200
    assert sorted(set(links_in(response.text))) == sorted([first, second])
    assert 'class="conversation-actions"' in response.text  # the full list, with its menus
    assert f'href="/c/{first}" aria-current="page"' in response.text


def test_without_javascript_the_search_is_a_page_with_the_results_in_the_sidebar(
    member_http: httpx2.Client, member: Any
) -> None:
    shown = conversation_of(member.id, "Shown conversation", question("hello"))
    conversation_of(member.id, "Roses", question("red"))

    response = member_http.get("/chat/search", params={"q": "roses", "conversation_id": str(shown)})

    assert response.status_code == 200
    page = response.text
    assert "<title>Shown conversation · ModelDesk</title>" in page
    assert 'value="roses"' in page  # the box keeps what was searched for
    sidebar = page.split('id="conversation-list"', 1)[1].split("</ul>", 1)[0]
    assert "<mark>Roses</mark>" in sidebar and "Shown conversation" not in sidebar


@pytest.mark.parametrize(
    "query", ['"', "*", "AND", "NEAR(", "((", "a:b", "x & !y", "'", "\x00", "é" * 500]
)
def test_odd_queries_answer_without_an_error(
    member_http: httpx2.Client, member: Any, query: str
) -> None:
    conversation_of(member.id, "AND NEAR", question("words"))

    for headers in (SEARCH_HX, {}):
        response = member_http.get("/chat/search", params={"q": query}, headers=headers)
        assert response.status_code == 200, (query, response.text[:300])


def test_a_search_that_finds_nothing_says_so(member_http: httpx2.Client, member: Any) -> None:
    conversation_of(member.id, "Garden", question("roses"))

    response = member_http.get("/chat/search", params={"q": "tulips"}, headers=SEARCH_HX)

    assert "No conversation matches “tulips”." in unescape(response.text)


# --- export ------------------------------------------------------------------------------


def test_markdown_export_is_an_attachment_with_title_roles_names_and_texts(
    member_http: httpx2.Client, member: Any
) -> None:
    conversation_id = conversation_of(
        member.id,
        "Über «Pläne» / 2026: the garden!",
        question("Which roses?\n\nRed ones."),
        answer("Plant **roses** in May."),
        question("And tulips?"),
        answer("", status="error", error_code="LLM_REQUEST_FAILED", error_text="HTTP 503"),
    )

    response = member_http.get(f"/c/{conversation_id}/export.md")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/markdown; charset=utf-8"
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="uber-plane-2026-the-garden.md"'
    )
    assert response.text == (
        "# Über «Pläne» / 2026: the garden!\n\n"
        "## You\n\nWhich roses?\n\nRed ones.\n\n"
        "## Assistant · Acme One · Balanced\n\nPlant **roses** in May.\n\n"
        "## You\n\nAnd tulips?\n\n"
        "## Assistant · Acme One · Balanced (error)\n\n"
        "*LLM_REQUEST_FAILED: HTTP 503*\n"
    )


def test_json_export_has_each_message_with_model_preset_usage_and_timings(
    member_http: httpx2.Client, member: Any
) -> None:
    conversation_id = conversation_of(
        member.id, "Roses", question("Which roses?"), answer("Red ones.")
    )

    response = member_http.get(f"/c/{conversation_id}/export.json")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="roses.json"'
    document = json.loads(response.text)
    assert document["title"] == "Roses"
    assert document["created_at"].endswith("+00:00")
    user, reply = document["messages"]
    assert user["role"] == "user" and user["content"] == "Which roses?"
    assert user["model"] is None and user["usage"] is None
    assert {key: reply[key] for key in ("role", "content", "model", "preset", "status")} == {
        "role": "assistant",
        "content": "Red ones.",
        "model": "Acme One",
        "preset": "Balanced",
        "status": "complete",
    }
    assert reply["usage"] == {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42}
    assert reply["timings"] == {"ttft_ms": 120.0, "total_ms": 1620.0, "tokens_per_second": 20.0}
    assert reply["created_at"].endswith("+00:00")


def test_another_users_conversation_cannot_be_exported(
    live_server: LiveServer, member_http: httpx2.Client, other_user: Any
) -> None:
    theirs = conversation_of(other_user.id, "Private", question("secret"))

    for path in (f"/c/{theirs}/export.md", f"/c/{theirs}/export.json"):
        response = member_http.get(path)
        assert response.status_code == 404, path
        assert "secret" not in response.text
    owner = signed_in_client(live_server, "other@example.com")
    try:
        assert owner.get(f"/c/{theirs}/export.md").status_code == 200
    finally:
        owner.close()


def test_the_conversation_page_links_both_exports(member_http: httpx2.Client, member: Any) -> None:
    conversation_id = conversation_of(member.id, "Roses", question("Which?"))

    page = member_http.get(f"/c/{conversation_id}").text

    assert f'href="/c/{conversation_id}/export.md" download' in page
    assert f'href="/c/{conversation_id}/export.json" download' in page
