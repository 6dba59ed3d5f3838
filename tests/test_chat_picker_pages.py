"""The chat picker on the page: providers as optgroups, unusable models disabled for members
(with the reason, and a send refused with the text kept), marked for admins with a fix link."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.support.factories import make_model, make_provider
from webapp.extensions import db as _db
from webapp.models import ChatMessage, LLMModel

HX = {"HX-Request": "true"}


@pytest.fixture
def models(app: Flask) -> dict[str, LLMModel]:
    local = make_provider(name="Local")
    hosted = make_provider(name="Hosted", requires_api_key=True)
    return {
        "usable": make_model(local, model="llama", name="Llama", enabled=True),
        "needs_key": make_model(hosted, model="gpt", name="GPT", enabled=True),
    }


def option_tag(html: str, model: LLMModel) -> str:
    match = re.search(rf'<option value="{model.id}"[^>]*>[^<]*</option>', html)
    assert match, html
    return unescape(match.group(0))


def message_count() -> int:
    return int(_db.session.scalar(select(func.count()).select_from(ChatMessage)) or 0)


def test_providers_are_optgroups_and_a_member_cannot_pick_a_keyless_hosted_model(
    member_client: FlaskClient, models: dict[str, LLMModel]
) -> None:
    html = member_client.get("/").get_data(as_text=True)

    assert '<optgroup label="Hosted">' in html and '<optgroup label="Local">' in html
    needs_key = option_tag(html, models["needs_key"])
    assert " disabled" in needs_key and "GPT — needs an API key — ask an admin" in needs_key
    assert " disabled" not in option_tag(html, models["usable"])
    assert " selected" in option_tag(html, models["usable"])
    assert "/providers/" not in html


def test_a_member_sending_to_it_is_refused_with_the_reason_and_keeps_the_text(
    member_client: FlaskClient, models: dict[str, LLMModel]
) -> None:
    data = {"llm_model_id": str(models["needs_key"].id), "content": "Keep me, please"}

    response = member_client.post("/c/new", data=data, headers=HX)

    assert response.status_code == 422
    html = unescape(response.get_data(as_text=True))
    assert "GPT: needs an API key — ask an admin." in html
    assert ">Keep me, please</textarea>" in html
    assert message_count() == 0


def test_an_admin_sees_the_mark_and_the_fix_link_and_may_send(
    admin_client: FlaskClient, models: dict[str, LLMModel]
) -> None:
    hosted = models["needs_key"].llm_provider
    html = unescape(admin_client.get("/").get_data(as_text=True))

    needs_key = option_tag(html, models["needs_key"])
    assert " disabled" not in needs_key and "⚠ GPT (needs an API key — ask an admin)" in needs_key
    assert f'href="/providers/{hosted.id}/edit">Fix Hosted</a>' in html

    data = {"llm_model_id": str(models["needs_key"].id), "content": "Try it anyway"}
    response = admin_client.post("/c/new", data=data)

    assert response.status_code == 303, response.get_data(as_text=True)
    assert message_count() == 2


def test_a_failed_connection_test_is_the_reason_shown(
    member_client: FlaskClient, models: dict[str, LLMModel], db: Any
) -> None:
    llama = models["usable"]
    llama.connection_failed_at = llama.created_at
    llama.connection_error = "could not reach llm.example.com: name not found"
    db.session.commit()

    html = unescape(member_client.get("/").get_data(as_text=True))

    assert (
        "Llama — its last connection test failed: could not reach llm.example.com: name not found"
        in option_tag(html, llama)
    )
