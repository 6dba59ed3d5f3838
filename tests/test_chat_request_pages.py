"""The chat composer's "Show request" (admins): the exact request the draft would send."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.factories import make_model, make_preset, make_provider
from tests.support.net import closed_port_url
from webapp.models import LLMModel


@pytest.fixture
def model(app: Flask) -> LLMModel:
    provider = make_provider(
        name="Acme", api_key="sk-chat-preview-SECRET", headers={"X-Title": "title-SECRET-9"}
    )
    model = make_model(provider, model="acme-1", name="Acme One", enabled=True)
    make_preset(model, key="default", name="Balanced", llm_options_overrides={"max_tokens": 64})
    return model


def form(model: LLMModel, content: str = "Hello there", **fields: Any) -> dict[str, str]:
    return {"llm_model_id": str(model.id), "llm_preset_id": "", "content": content, **fields}


def shown_request(body: str) -> dict[str, Any]:
    match = re.search(r'<pre class="request-json"><code>(.*?)</code></pre>', body, re.S)
    assert match, body
    return json.loads(html.unescape(match.group(1)))


def test_admins_see_the_exact_request_with_masked_headers(
    admin_client: FlaskClient, model: LLMModel
) -> None:
    response = admin_client.post(
        "/chat/request", data=form(model, "Hi <b>there</b>", system_prompt="Be brief.")
    )

    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "SECRET" not in body
    assert "<b>there</b>" not in body  # escaped like any text
    shown = shown_request(body)
    assert shown["url"] == "https://llm.example.com/v1/chat/completions"
    assert shown["headers"] == {
        "Authorization": "[redacted]",
        "Content-Type": "application/json",
        "X-Title": "[redacted]",
    }
    assert shown["body"] == {
        "model": "acme-1",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi <b>there</b>"},
        ],
        "max_tokens": 64,
    }
    assert shown["budget"]["reserve_tokens"] == 64


def test_a_rule_that_says_no_is_shown_in_words(
    admin_client: FlaskClient, model: LLMModel, db: Any
) -> None:
    model.supports_streaming = False
    other = make_model(model.llm_provider, model="acme-2", name="Acme Two", enabled=True)
    db.session.commit()

    empty = admin_client.post("/chat/request", data=form(model, "")).get_data(as_text=True)
    unknown = admin_client.post("/chat/request", data=form(other, llm_model_id="x"))

    assert "EMPTY_PROMPT: there is no prompt to send" in empty
    assert "Choose a model." in unknown.get_data(as_text=True)


def test_members_neither_see_the_disclosure_nor_may_ask(
    member_client: FlaskClient, model: LLMModel
) -> None:
    assert "Show request" not in member_client.get("/").get_data(as_text=True)
    assert member_client.post("/chat/request", data=form(model)).status_code == 403


def test_admins_have_the_disclosure_under_the_composer(
    admin_client: FlaskClient, model: LLMModel
) -> None:
    page = admin_client.get("/").get_data(as_text=True)
    assert "<summary>Show request</summary>" in page
    assert 'hx-post="/chat/request"' in page


def test_nothing_is_sent(admin_client: FlaskClient, app: Flask, db: Any) -> None:
    provider = make_provider(name="Nowhere", base_url=closed_port_url())
    model = make_model(provider, model="n-1", name="N", enabled=True)

    response = admin_client.post("/chat/request", data=form(model))

    # A closed port: any attempt to send would have failed; the preview just shows it.
    assert shown_request(response.get_data(as_text=True))["body"]["model"] == "n-1"
