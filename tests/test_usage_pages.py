"""The Usage page (admins only): filters that keep their values, the chart, the table, the
CSV export, and bad filter input answered next to its field."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.support.factories import make_model, make_provider
from tests.support.usage import on_day, usage_event
from tests.support.users import MEMBER_EMAIL
from webapp.models import User
from webapp.services import usage

TODAY = datetime.now(UTC).date()


def today_at(hour: int) -> datetime:
    return datetime.combine(TODAY, datetime.min.time(), tzinfo=UTC) + timedelta(hours=hour)


@pytest.fixture
def recorded(app: Any, member: User) -> dict[str, Any]:
    model = make_model(make_provider(), key="acme", name="Acme 1")
    for event in (
        usage_event(app_key_id=1, created_at=today_at(1)),
        usage_event(app_key_id=1, created_at=today_at(2), status=429, error_code="rate_limit"),
        usage_event(app_key_id=2, model_key="acme", llm_model_id=model.id, created_at=today_at(3)),
        usage_event(
            source="chat",
            app_key_id=None,
            user_id=member.id,
            model_key=None,
            llm_model_id=model.id,
            created_at=today_at(4),
        ),
        usage_event(app_key_id=3, created_at=on_day("2026-01-15")),
    ):
        usage.record(event)
    return {"model": model, "member": member}


def table_rows(page: str) -> list[list[str]]:
    body = page.split('<table class="responsive usage">', 1)[1].split("</table>", 1)[0]
    return [
        [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", body.split("<tbody>", 1)[1], re.S)
    ]


def test_members_may_not_see_usage(member_client: FlaskClient) -> None:
    assert member_client.get("/usage").status_code == 403
    assert member_client.get("/usage.csv").status_code == 403


def test_signed_out_visitors_are_sent_to_sign_in(client: FlaskClient) -> None:
    response = client.get("/usage")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_the_admin_nav_links_the_usage_page(admin_client: FlaskClient) -> None:
    page = admin_client.get("/usage").text
    assert re.search(r'<a href="/usage" aria-current="page">Usage</a>', page)


def test_the_page_shows_the_last_30_days_per_key_and_model_with_a_chart(
    admin_client: FlaskClient, recorded: dict[str, Any]
) -> None:
    response = admin_client.get("/usage")
    assert response.status_code == 200
    page = response.text
    # Written by the page's own flush; January's call is outside the default range.
    assert table_rows(page) == [
        ["key #1", "mock", "2", "1", "20", "40"],
        ["key #2", "acme", "1", "0", "10", "20"],
        [MEMBER_EMAIL, "acme", "1", "0", "10", "20"],
    ]
    assert len(re.findall(r'<g class="day" data-day="', page)) == 30
    today = re.search(rf'<g class="day" data-day="{TODAY.isoformat()}">(.*?)</g>', page, re.S)
    assert today is not None
    assert f"{TODAY.isoformat()}: 4 requests, 1 error" in today.group(1)
    assert 'class="bar-errors"' in today.group(1)
    assert "style=" not in page


def test_filters_narrow_the_table_and_keep_their_values(
    admin_client: FlaskClient, recorded: dict[str, Any]
) -> None:
    model, member = recorded["model"], recorded["member"]
    page = admin_client.get(f"/usage?model={model.id}&key=user:{member.id}").text
    assert table_rows(page) == [[MEMBER_EMAIL, "acme", "1", "0", "10", "20"]]
    assert f'<option value="user:{member.id}" selected>{MEMBER_EMAIL}</option>' in page
    assert f'<option value="{model.id}" selected>acme</option>' in page

    page = admin_client.get("/usage?from=2026-01-01&to=2026-01-31").text
    assert table_rows(page) == [["key #3", "mock", "1", "0", "10", "20"]]
    assert 'name="from" value="2026-01-01"' in page and 'name="to" value="2026-01-31"' in page
    assert "/usage.csv?from=2026-01-01&amp;to=2026-01-31" in page


def test_the_filter_form_gets_just_the_panel_and_pushes_the_address(
    admin_client: FlaskClient, recorded: dict[str, Any]
) -> None:
    response = admin_client.get(
        "/usage?key=key:2", headers={"HX-Request": "true", "HX-Target": "usage-panel"}
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<div id="usage-panel">')
    assert "<html" not in response.text
    assert table_rows(response.text) == [["key #2", "acme", "1", "0", "10", "20"]]
    assert 'hx-push-url="true"' in response.text


def test_an_empty_range_says_so(admin_client: FlaskClient, recorded: dict[str, Any]) -> None:
    page = admin_client.get("/usage?from=2025-01-01&to=2025-01-31").text
    assert "No requests in this range" in page
    assert "<svg" not in page


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("from=2026-13-45", "from", "is not a date: use YYYY-MM-DD"),
        ("to=yesterday", "to", "is not a date"),
        ("from=20261201", "from", "is not a date"),
        ("model=abc", "model", "choose a model from the list"),
        ("key=key:abc", "key", "choose a key or user from the list"),
        ("key=team:3", "key", "choose a key or user from the list"),
        ("from=2026-12-02&to=2026-12-01", "to", "must be the same day as from or later"),
        ("from=2020-01-01&to=2026-01-01", "from", "the range can be at most 366 days"),
        ("from=%00%ff", "from", "is not a date"),
    ],
)
def test_bad_filter_input_is_explained_next_to_its_field(
    admin_client: FlaskClient, recorded: dict[str, Any], query: str, field: str, message: str
) -> None:
    response = admin_client.get(f"/usage?{query}")
    assert response.status_code == 400
    error = re.search(rf'<p class="field-error" id="filter-{field}-error">(.*?)</p>', response.text)
    assert error is not None, response.text
    assert message.lower() in error.group(1).lower()
    assert f'aria-describedby="filter-{field}-error"' in response.text
    assert "<table" not in response.text
    csv_response = admin_client.get(f"/usage.csv?{query}")
    assert csv_response.status_code == 400
    assert csv_response.mimetype == "text/plain"


def test_csv_export_honours_the_filters_and_downloads(
    admin_client: FlaskClient, recorded: dict[str, Any]
) -> None:
    response = admin_client.get("/usage.csv?key=key:1")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and ".csv" in disposition
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["key"], r["model"], r["status"], r["error_code"]) for r in rows] == [
        ("key #1", "mock", "200", ""),
        ("key #1", "mock", "429", "rate_limit"),
    ]
    assert rows[0]["created_at"] == today_at(1).isoformat()
    assert (rows[0]["prompt_tokens"], rows[0]["completion_tokens"]) == ("10", "20")
