"""check_model_connection against the real mock API: one tiny request, and
connection_tested_at set on success, cleared on any failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from tests.support.mock_api import (
    API_KEY_SECRET,
    FAULT,
    HEADER_SECRET,
    MockAPI,
    echo_credentials,
    mock_model,
    mock_provider,
)
from tests.support.net import closed_port_url
from webapp.models import LLMModel
from webapp.services import check_model_connection

EARLIER = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def stored_tested_at(db: Any, model: LLMModel) -> datetime | None:
    """connection_tested_at as the database has it (not the session's copy)."""
    db.session.expire_all()
    return db.session.scalar(select(LLMModel.connection_tested_at).where(LLMModel.id == model.id))


def model_tested_long_ago(server_url: str, **attributes: Any) -> LLMModel:
    """A mock model that passed a test once, long ago."""
    return mock_model(mock_provider(server_url), connection_tested_at=EARLIER, **attributes)


def test_success_sends_one_ping_and_records_the_time(
    app: Flask, db: Any, mock_api: MockAPI
) -> None:
    model = model_tested_long_ago(mock_api.url)

    result = check_model_connection(model)

    assert result.success, result.errors
    assert result.value["latency_ms"] > 0
    tested_at = stored_tested_at(db, model)
    assert tested_at is not None
    assert datetime.now(UTC) - tested_at < timedelta(seconds=10)
    assert result.value["tested_at"] == tested_at
    assert mock_api.wire.bodies == [
        {
            "model": "mock",
            "messages": [{"role": "user", "content": "ping"}],
            "max_tokens": 1,
            "temperature": 0,
        }
    ]


def test_a_disabled_model_can_be_tested(app: Flask, db: Any, mock_api: MockAPI) -> None:
    model = model_tested_long_ago(mock_api.url, enabled=False)

    result = check_model_connection(model)

    assert result.success, result.errors
    assert stored_tested_at(db, model) not in (None, EARLIER)


@pytest.mark.parametrize("fault", ["status=503", "status=401", "status=429"])
def test_an_error_status_clears_the_time_and_says_why(
    app: Flask, db: Any, mock_api: MockAPI, fault: str
) -> None:
    model = mock_model(mock_provider(mock_api.url, headers={FAULT: fault}))
    model.connection_tested_at = EARLIER
    db.session.commit()
    status = fault.removeprefix("status=")

    result = check_model_connection(model)

    assert (result.success, result.code) == (False, "LLM_REQUEST_FAILED")
    assert result.errors == [f"the provider answered HTTP {status}: mock fault: HTTP {status}"]
    assert result.value["latency_ms"] >= 0
    assert stored_tested_at(db, model) is None


def test_a_refused_connection_clears_the_time(app: Flask, db: Any) -> None:
    model = model_tested_long_ago(closed_port_url())

    result = check_model_connection(model)

    assert result.code == "LLM_REQUEST_FAILED"
    assert "refused" in result.errors[0].lower()
    assert stored_tested_at(db, model) is None


def test_a_failure_is_recorded_and_a_later_success_clears_it(
    app: Flask, db: Any, mock_api: MockAPI
) -> None:
    model = model_tested_long_ago(closed_port_url())

    check_model_connection(model)
    db.session.expire_all()
    assert model.connection_failed_at is not None
    assert "refused" in (model.connection_error or "").lower()

    model.llm_provider.base_url = mock_api.url
    db.session.commit()
    assert check_model_connection(model).success
    db.session.expire_all()
    assert (model.connection_failed_at, model.connection_error) == (None, None)


def test_stream_faults_do_not_fail_the_test(app: Flask, db: Any, mock_api: MockAPI) -> None:
    model = mock_model(mock_provider(mock_api.url, headers={FAULT: "cut=0"}))

    assert check_model_connection(model).success


def test_a_failure_never_shows_the_secrets(
    app: Flask, db: Any, mock_api: MockAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[dict[str, str]] = []
    monkeypatch.setattr(mock_api.app, "wsgi_app", echo_credentials(received))
    provider = mock_provider(
        mock_api.url, api_key=API_KEY_SECRET, headers={"X-Api-Key": HEADER_SECRET}
    )

    result = check_model_connection(mock_model(provider))

    assert received == [{"authorization": f"Bearer {API_KEY_SECRET}", "x-api-key": HEADER_SECRET}]
    [message] = result.errors
    assert message.startswith("the provider answered HTTP 401: rejected Bearer [redacted]")
    assert API_KEY_SECRET not in message
    assert HEADER_SECRET not in message
