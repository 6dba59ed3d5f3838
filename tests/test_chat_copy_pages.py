"""The copy actions in a message's HTML: which messages have them, and the raw Markdown a
reply carries for "Copy Markdown" (escaped, so a reply cannot break out of its <template>)."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.support.factories import make_model, make_provider
from webapp.extensions import db as _db
from webapp.models import ChatMessage, Conversation

RAW = "Run:\n\n```bash\necho '</template><script>alert(1)</script>' & \"x\"\n```\n"


def conversation_with(member: Any, **reply: Any) -> tuple[int, int, int]:
    """A question and its reply in a new conversation of `member`: (conversation, question,
    reply) ids."""
    model = make_model(make_provider(), enabled=True)
    conversation = Conversation(user_id=member.id, title="Copying", llm_model_id=model.id)
    _db.session.add(conversation)
    _db.session.flush()
    question = ChatMessage(conversation_id=conversation.id, role="user", content="How? <b>")
    answer = ChatMessage(
        conversation_id=conversation.id,
        role="assistant",
        llm_model_id=model.id,
        model_name=model.name,
        **{"content": RAW, **reply},
    )
    _db.session.add_all([question, answer])
    _db.session.commit()
    return conversation.id, question.id, answer.id


def article(html: str, message_id: int) -> str:
    found = re.search(rf'<article id="message-{message_id}".*?</article>', html, re.DOTALL)
    assert found, html
    return found.group(0)


def test_a_reply_carries_its_markdown_escaped_and_both_copy_buttons(
    app: Flask, member: Any, member_client: FlaskClient
) -> None:
    conversation_id, question_id, reply_id = conversation_with(member)

    page = member_client.get(f"/c/{conversation_id}").get_data(as_text=True)

    reply = article(page, reply_id)
    footer = reply[reply.index('<footer class="meta">') :]
    assert '<button type="button" class="copy-button" data-copy-text="text">Copy</button>' in footer
    assert 'data-copy-text="markdown">Copy Markdown</button>' in footer
    template = re.search(r"<template data-copy-markdown>(.*?)</template>", reply, re.DOTALL)
    assert template, reply
    # The first </template> is the real one: the text inside is the whole reply, unescaped.
    assert unescape(template.group(1)) == RAW
    assert "<script" not in reply
    question = article(page, question_id)
    assert 'data-copy-text="text">Copy</button>' in question
    assert "Copy Markdown" not in question and "<template" not in question


def test_a_reply_still_being_written_has_no_copy_actions(
    app: Flask, member: Any, member_client: FlaskClient
) -> None:
    _, _, reply_id = conversation_with(member, status="streaming", content="so far")

    html = member_client.get(f"/messages/{reply_id}").get_data(as_text=True)

    assert f'sse-connect="/messages/{reply_id}/stream"' in html  # its text comes live
    assert "data-copy" not in html and "<template" not in html


def test_a_reply_without_text_has_no_copy_actions(
    app: Flask, member: Any, member_client: FlaskClient
) -> None:
    _, _, reply_id = conversation_with(member, status="stopped", content="")

    html = member_client.get(f"/messages/{reply_id}").get_data(as_text=True)

    assert "Stopped before any text arrived." in html
    assert "data-copy" not in html
