"""Security headers, proxy trust, private-URL blocking, health check."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, request
from flask.testing import FlaskClient

from seeds import seed_llm
from tests.support.app import make_config
from webapp import create_app
from webapp.models import LLMProvider
from webapp.models.validation import is_private_target


def test_every_response_carries_security_headers(client: FlaskClient, admin: Any) -> None:
    for path in ("/login", "/healthz", "/static/app.css", "/no-such-page"):
        with client.get(path) as response:
            headers = response.headers
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp and "frame-ancestors 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"


def test_healthz_answers_without_sign_in(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_healthz_reports_an_unreachable_database(tmp_path: Any) -> None:
    app = create_app(make_config("postgresql://nobody@127.0.0.1:1/none", str(tmp_path)))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["database"] == "unreachable"


def test_forwarded_headers_ignored_unless_trusted(app: Flask, db: Any, tmp_path: Any) -> None:
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    seen: dict[str, Any] = {}

    def probe(target: Flask) -> None:
        def capture() -> None:
            seen["scheme"], seen["remote"] = request.scheme, request.remote_addr

        target.before_request_funcs.setdefault(None, []).insert(0, capture)

    untrusted = create_app(make_config(app.config["SQLALCHEMY_DATABASE_URI"], str(tmp_path)))
    probe(untrusted)
    untrusted.test_client().get("/healthz", headers=headers)
    assert seen["scheme"] == "http"
    trusted = create_app(
        make_config(app.config["SQLALCHEMY_DATABASE_URI"], str(tmp_path), TRUSTED_PROXY_COUNT=1)
    )
    probe(trusted)
    trusted.test_client().get("/healthz", headers=headers)
    assert (seen["scheme"], seen["remote"]) == ("https", "203.0.113.9")
    for other in (untrusted, trusted):
        with other.app_context():
            db.engine.dispose()  # close their pooled connections now, not at garbage collection


@pytest.mark.parametrize(
    ("url", "private"),
    [
        ("http://localhost:11434", True),
        ("http://127.0.0.1:8000", True),
        ("http://[::1]:8000", True),
        ("http://10.1.2.3", True),
        ("http://192.168.0.10", True),
        ("http://169.254.169.254/latest", True),
        ("http://0.0.0.0", True),
        ("https://8.8.8.8", False),
        ("https://api.openai.com.invalid", False),
    ],
)
def test_private_target_detection(url: str, private: bool) -> None:
    assert is_private_target(url) is private


def test_private_urls_allowed_by_default(app: Flask, db: Any) -> None:
    provider = LLMProvider(name="Ollama", base_url="http://localhost:11434", api_prefix="/v1")
    assert provider.validation_errors() == {}


def test_private_urls_blocked_when_configured(app: Flask, db: Any) -> None:
    app.config["BLOCK_PRIVATE_URLS"] = True
    provider = LLMProvider(name="Meta", base_url="http://169.254.169.254", api_prefix="")
    assert "private or loopback" in provider.validation_errors()["base_url"][0]
    public = LLMProvider(name="Pub", base_url="https://8.8.8.8", api_prefix="/v1")
    assert public.validation_errors() == {}


def test_seed_skips_private_providers_when_blocked(app: Flask, db: Any) -> None:
    report = seed_llm(db.session, {**app.config, "BLOCK_PRIVATE_URLS": True})
    assert sorted(report.skipped) == [
        "provider Custom (private address blocked)",
        "provider Ollama (Local) (private address blocked)",
    ]
    assert db.session.query(LLMProvider).count() == 6
