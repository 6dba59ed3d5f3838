"""The model page's "Probe capabilities" button and "Apply observed flags" (Flask test client;
the probes themselves go to the live mock API)."""

from __future__ import annotations

import html
import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.support.mock_api import MockAPI, mock_model, mock_provider
from webapp.models import LLMModel

HTMX = {"HX-Request": "true"}


def text_of(response: Any) -> str:
    return response.get_data(as_text=True)


def rows(body: str) -> dict[str, list[str]]:
    """The probe table: capability label → [stored, observed, evidence]."""
    found = {}
    for label, cells in re.findall(r'<th scope="row">(.*?)</th>(.*?)</tr>', body, re.S):
        found[html.unescape(label)] = [
            html.unescape(cell.strip()) for cell in re.findall(r"<td[^>]*>(.*?)</td>", cells, re.S)
        ]
    return found


def test_edit_page_has_the_probe_button_and_never_probed(
    app: Flask, admin_client: FlaskClient, mock_api: MockAPI
) -> None:
    model = mock_model(mock_provider(mock_api.url))

    body = text_of(admin_client.get(f"/models/{model.id}/edit"))

    assert "Probe capabilities" in body
    assert f'hx-post="/models/{model.id}/probe"' in body
    assert 'class="spinner htmx-indicator"' in body
    assert re.search(r'<span id="probed-at">never</span>', body)
    assert mock_api.wire.requests == []  # showing the page sends nothing


def test_probe_fragment_shows_stored_beside_observed_with_evidence(
    app: Flask, db: Any, admin_client: FlaskClient, mock_api: MockAPI
) -> None:
    model = mock_model(mock_provider(mock_api.url), model="mock-basic", key="mock-basic")

    response = admin_client.post(f"/models/{model.id}/probe", headers=HTMX)

    assert response.status_code == 200
    body = text_of(response)
    assert "<html" not in body
    table = rows(body)
    assert table["Streaming"][:2] == ["yes", "yes"]
    assert table["Tool calling"] == [
        "no",
        "no",
        "refused: the provider answered HTTP 400: tools are not supported by this model",
    ]
    assert table["JSON schema responses"][:2] == ["no", "no"]
    # The observed values go back with Apply; the "last probed" time is swapped in place.
    assert '<input type="hidden" name="supports_tool_calling" value="0">' in body
    assert '<span id="probed-at" hx-swap-oob="true"><time datetime=' in body
    db.session.expire_all()
    assert db.session.get(LLMModel, model.id).capabilities_probed_at is not None
    assert len(mock_api.wire.requests) == 5


def test_probe_without_htmx_renders_the_edit_page_with_the_result(
    app: Flask, admin_client: FlaskClient, mock_api: MockAPI
) -> None:
    model = mock_model(mock_provider(mock_api.url))

    body = text_of(admin_client.post(f"/models/{model.id}/probe"))

    assert "<html" in body and "Save model" in body
    assert rows(body)["Tool calling"][:2] == ["no", "yes"]


def test_apply_sets_posted_flags_and_leaves_unposted_ones(
    app: Flask, db: Any, admin_client: FlaskClient, mock_api: MockAPI
) -> None:
    model = mock_model(mock_provider(mock_api.url), supports_parallel_tool_calls=True)

    response = admin_client.post(
        f"/models/{model.id}/probe/apply",
        data={"supports_tool_calling": "1", "supports_streaming": "0", "bogus": "1"},
        headers=HTMX,
    )

    assert response.status_code == 204
    assert response.headers["HX-Location"] == f"/models/{model.id}/edit"
    db.session.expire_all()
    assert db.session.get(LLMModel, model.id).capabilities == {
        "supports_tool_calling": True,
        "supports_response_format_json_object": False,
        "supports_response_format_json_schema": False,
        "supports_streaming": False,
        "supports_parallel_tool_calls": True,  # not posted (unknown): unchanged
    }
    body = text_of(admin_client.get(f"/models/{model.id}/edit"))
    assert "Applied the observed capabilities to Mock: Streaming, Tool calling." in body


def test_members_cannot_probe_or_apply(
    app: Flask, member_client: FlaskClient, mock_api: MockAPI
) -> None:
    model = mock_model(mock_provider(mock_api.url))

    assert member_client.post(f"/models/{model.id}/probe", headers=HTMX).status_code == 403
    apply = member_client.post(f"/models/{model.id}/probe/apply", data={"supports_streaming": "0"})
    assert apply.status_code == 403
    assert mock_api.wire.requests == []
