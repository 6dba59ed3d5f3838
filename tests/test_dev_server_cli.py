"""`flask up` (behind scripts/dev.sh), without serving: where it seeds the mock provider, and
what it says when a database was seeded for another address. The dev server itself, as a
process that streams a reply, is tested in test_gunicorn_http.py."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskCliRunner

from seeds import MOCK_PROVIDER_NAME, mock_base_url
from webapp.cli import setup as setup_cli
from webapp.extensions import db


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Where `flask up` would have served (nothing is)."""
    calls: list[tuple[str, int]] = []

    def run_simple(host: str, port: int, _app: Any, **_options: Any) -> None:
        calls.append((host, port))

    monkeypatch.setattr(setup_cli, "run_simple", run_simple)
    monkeypatch.delenv("MOCK_LLM_BASE_URL", raising=False)
    return calls


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "http://127.0.0.1:8123"),
        ("0.0.0.0", "http://127.0.0.1:8123"),
        ("::", "http://[::1]:8123"),
        ("::1", "http://[::1]:8123"),
        ("localhost", "http://localhost:8123"),
    ],
)
def test_up_seeds_the_mock_at_the_address_it_serves(
    runner: FlaskCliRunner, served: list[tuple[str, int]], host: str, address: str
) -> None:
    result = runner.invoke(args=["up", "--host", host, "--port", "8123"])

    assert result.exit_code == 0, result.output
    assert mock_base_url(db.session) == address
    assert f"ModelDesk on {address}/" in result.output and "note:" not in result.output
    assert served == [(host, 8123)]


def test_a_set_mock_llm_base_url_wins(
    runner: FlaskCliRunner, served: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # As an app started with it in the environment has it.
    monkeypatch.setenv("MOCK_LLM_BASE_URL", "http://127.0.0.1:9001")
    runner.app.config["MOCK_LLM_BASE_URL"] = "http://127.0.0.1:9001"

    result = runner.invoke(args=["up", "--port", "8123"])

    assert result.exit_code == 0, result.output
    assert mock_base_url(db.session) == "http://127.0.0.1:9001"
    assert "note:" not in result.output


def test_serving_a_database_seeded_for_another_port_says_where_the_mock_points(
    runner: FlaskCliRunner, served: list[tuple[str, int]]
) -> None:
    runner.invoke(args=["up", "--port", "8123"])

    result = runner.invoke(args=["up", "--port", "8124"])

    assert result.exit_code == 0, result.output
    assert mock_base_url(db.session) == "http://127.0.0.1:8123"  # seeds never overwrite
    assert (
        f"note: the {MOCK_PROVIDER_NAME} provider points at http://127.0.0.1:8123, "
        "not http://127.0.0.1:8124"
    ) in result.output
