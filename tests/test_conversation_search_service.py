"""Searching conversations on the suite's database (SQLite FTS5, or PostgreSQL full text)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webapp.extensions import db as _db
from webapp.models import ChatMessage, Conversation, User
from webapp.services.conversation_search import Fragment, highlight, search, snippet
from webapp.services.users import create_user


def make_user(email: str) -> User:
    user, errors = create_user(email, "correct horse battery")
    assert user is not None, errors
    return user


def make_conversation(user: User, title: str, *texts: str) -> int:
    conversation = Conversation(user_id=user.id, title=title)
    _db.session.add(conversation)
    _db.session.flush()
    for number, content in enumerate(texts):
        role = "user" if number % 2 == 0 else "assistant"
        _db.session.add(ChatMessage(conversation_id=conversation.id, role=role, content=content))
    _db.session.commit()
    return conversation.id


def found(user: User, query: str) -> list[int]:
    return [hit.conversation_id for hit in search(user.id, query)]


def marked(fragments: tuple[Fragment, ...] | list[Fragment]) -> list[str]:
    return [fragment.text for fragment in fragments if fragment.marked]


@pytest.fixture
def owner(app: Any) -> User:
    return make_user("owner@example.com")


def test_a_title_match_is_found_with_the_word_marked(owner: User) -> None:
    wanted = make_conversation(owner, "Planning the garden shed", "What wood?")
    make_conversation(owner, "Tax return", "Receipts")

    hits = search(owner.id, "garden")

    assert [hit.conversation_id for hit in hits] == [wanted]
    assert marked(hits[0].title_fragments) == ["garden"]
    assert "".join(f.text for f in hits[0].title_fragments) == "Planning the garden shed"


def test_a_message_match_is_found_with_a_marked_snippet(owner: User) -> None:
    filler = " ".join(["Some words before the point."] * 10)
    wanted = make_conversation(
        owner, "Untitled", "Hello", f"{filler} Use a Kubernetes operator here. The end."
    )
    make_conversation(owner, "Other", "Nothing about it")

    hits = search(owner.id, "kubernetes")

    assert [hit.conversation_id for hit in hits] == [wanted]
    snippet_text = "".join(f.text for f in hits[0].snippet)
    assert marked(hits[0].snippet) == ["Kubernetes"]
    assert snippet_text.startswith("…") and "Kubernetes operator" in snippet_text
    assert len(snippet_text) < len(filler)


def test_every_word_must_appear_and_the_last_one_may_be_a_prefix(owner: User) -> None:
    both = make_conversation(owner, "A", "streaming replies over server-sent events")
    one = make_conversation(owner, "B", "streaming video")

    assert sorted(found(owner, "stream")) == sorted([both, one])
    assert found(owner, "stream video") == []  # earlier words are whole words...
    assert found(owner, "streaming vid") == [one]
    assert found(owner, "streaming rep") == [both]  # ...the last one a prefix
    assert found(owner, "streaming replies ev") == [both]
    assert found(owner, "replies streaming") == [both]


def test_title_matches_come_before_text_matches(owner: User) -> None:
    in_text = make_conversation(owner, "Notes", "a question about invoices")
    in_title = make_conversation(owner, "Invoices for March", "numbers")

    assert found(owner, "invoices") == [in_title, in_text]


def test_other_users_conversations_are_never_found(owner: User) -> None:
    other = make_user("other@example.com")
    make_conversation(other, "Secret invoices", "the secret invoices text")
    mine = make_conversation(owner, "Mine", "my invoices")

    assert found(owner, "invoices") == [mine]
    assert found(owner, "secret") == []
    assert found(other, "my") == []


def test_a_deleted_or_edited_text_is_no_longer_found(owner: User) -> None:
    conversation_id = make_conversation(owner, "Old name", "temporary words")
    conversation = _db.session.get(Conversation, conversation_id)
    assert conversation is not None
    conversation.title = "New name"
    message = _db.session.scalars(_db.select(ChatMessage)).one()
    message.content = "lasting words"
    _db.session.commit()

    assert found(owner, "old") == [] and found(owner, "temporary") == []
    assert found(owner, "new name") == [conversation_id]
    assert found(owner, "lasting") == [conversation_id]

    _db.session.delete(conversation)
    _db.session.commit()
    assert found(owner, "lasting") == []


@pytest.mark.parametrize(
    "query",
    [
        '"',
        "*",
        "AND",
        "OR",
        "NOT",
        "NEAR",
        "(",
        ")",
        '"unclosed',
        "a AND",
        "NEAR(a b)",
        "col:word",
        "^x",
        "-x",
        "!x",
        "x & y",
        "a | b",
        "'",
        "''",
        "x:*",
        "<->",
        "\\",
        "%_",
        "   ",
        "",
        "…",
        "日本語",
    ],
)
def test_operators_and_punctuation_are_plain_text_and_never_fail(owner: User, query: str) -> None:
    make_conversation(owner, "AND OR NOT NEAR", "col x y a b 日本語")

    assert isinstance(search(owner.id, query), list)


def test_operator_words_are_searched_as_words(owner: User) -> None:
    wanted = make_conversation(owner, "Rock and roll", "near the end")
    make_conversation(owner, "Other", "nothing")

    assert found(owner, "AND") == [wanted]
    assert found(owner, "NEAR") == [wanted]
    assert found(owner, '"rock" AND (rol*') == [wanted]


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=40))
def test_no_query_raises(owner: User, query: str) -> None:
    assert isinstance(search(owner.id, query), list)


def test_snippet_and_title_text_are_kept_as_typed_for_escaping_later() -> None:
    fragments = highlight("<b>bold</b> claim", ["bold"])

    assert fragments == [Fragment("<b>"), Fragment("bold", True), Fragment("</b> claim")]
    assert marked(snippet("x " * 200 + "needle in <script>", ["needle"])) == ["needle"]


def test_the_last_word_marks_the_whole_words_it_starts() -> None:
    assert marked(highlight("Streaming streams upstream", ["stream"])) == [
        "Streaming",
        "streams",
    ]
    assert marked(highlight("stream streaming", ["stream", "x"])) == ["stream"]
