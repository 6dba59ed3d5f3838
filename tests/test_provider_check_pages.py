"""Check connection for a provider: its /models listed, latency and count, or the reason."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient

from tests.support.factories import make_provider
from tests.support.mock_api import MockAPI, mock_provider
from tests.support.net import closed_port_url

HTMX = {"HX-Request": "true", "HX-Target": "x"}


def test_check_connection_answers_with_latency_and_the_model_count(
    admin_client: FlaskClient, mock_api: MockAPI
) -> None:
    provider = mock_provider(mock_api.url)

    answer = admin_client.post(f"/providers/{provider.id}/check", headers=HTMX)

    assert answer.status_code == 200
    assert re.fullmatch(
        r'<span class="test-ok">OK · \d+(\.\d+)? ms · offers 1 model</span>',
        answer.get_data(as_text=True).strip(),
    )
    assert [r.path for r in mock_api.wire.requests] == ["/mock_llm/v1/models"]


def test_check_connection_says_why_a_provider_does_not_answer(admin_client: FlaskClient) -> None:
    provider = make_provider(name="Down", base_url=closed_port_url(), api_prefix="/v1")

    answer = admin_client.post(f"/providers/{provider.id}/check", headers=HTMX)
    plain = admin_client.post(f"/providers/{provider.id}/check", follow_redirects=True)

    assert 'class="test-error"' in answer.get_data(as_text=True)
    assert "connection to the provider failed" in answer.get_data(as_text=True)
    assert "Down: the connection to the provider failed" in plain.get_data(as_text=True)


def test_the_list_and_the_provider_page_offer_check_and_fetch(
    admin_client: FlaskClient, mock_api: MockAPI
) -> None:
    provider = mock_provider(mock_api.url)
    pages: list[Any] = [
        admin_client.get("/providers/").get_data(as_text=True),
        admin_client.get(f"/providers/{provider.id}/edit").get_data(as_text=True),
    ]
    for page in pages:
        assert f'hx-post="/providers/{provider.id}/check"' in page
        assert f'href="/providers/{provider.id}/import"' in page and "Fetch models" in page
    # No Python None reaches the table: a missing key or header says so in words.
    assert ">None<" not in pages[0] and "not set" in pages[0]


def test_members_cannot_check_providers(member_client: FlaskClient, mock_api: MockAPI) -> None:
    provider = mock_provider(mock_api.url)
    assert member_client.post(f"/providers/{provider.id}/check").status_code == 403
