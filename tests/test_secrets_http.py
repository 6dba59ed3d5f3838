"""Provider secrets never leak: not into logs, pages, streams, the transcript or the CLI.

A careless upstream answers every request with 401 and echoes the headers it received —
in its JSON error message and in response headers (which httpcore2 logs at DEBUG). With every
logger at DEBUG (SQLAlchemy's too, which logs rows with the decrypted key), an admin
creates the provider through the form, opens every page that shows it, tests the connection
and lists its models; a member chats with it; `flask chat` and `flask models test` run
against it. No secret (nor its distinctive middle) may show up anywhere — every header value is
one, whatever its name, and none is stored as it is — and every error still says what
happened: HTTP 401.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import httpx2
import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select, text

from tests.support.app import LiveServer
from tests.support.chat_http import deltas_text, end_html, read_frames, wait_for_status
from tests.support.factories import make_model, make_provider
from tests.support.users import csrf_token
from webapp.extensions import db as _db
from webapp.llm.secrets import remember_secrets
from webapp.llm.secrets import scrub_known as scrub_log_text
from webapp.models import LLMProvider

API_KEY = "sk-live-SECRETKEY-1234567890"
SECRET_HEADERS = {"Authorization": "Bearer hdr-SECRET-abcdef", "X-Api-Key": "xk-SECRET-999999"}
# A header whose name does not look secret: its value is still never shown.
TITLE = "my-app-title"
# The whole values, and the parts no page, log line or random token would contain by chance.
NEEDLES = (
    API_KEY,
    "hdr-SECRET-abcdef",
    "xk-SECRET-999999",
    "SECRETKEY",
    "hdr-SECRET",
    "xk-SECRET",
    TITLE,
)

# Each configuration sends different credentials: with an Authorization header configured,
# it replaces the SDK's "Bearer <api key>"; without one the key itself goes on the wire.
CONFIGURATIONS = {
    "key and secret headers": {**SECRET_HEADERS, "X-Title": TITLE},
    "key and X-Api-Key only": {"X-Api-Key": SECRET_HEADERS["X-Api-Key"], "X-Title": TITLE},
}


def careless_upstream(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """An OpenAI-like API that refuses everyone and repeats their credentials back."""
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    api_key = authorization.removeprefix("Bearer ")
    x_api_key = environ.get("HTTP_X_API_KEY", "")
    title = environ.get("HTTP_X_TITLE", "")
    message = (
        f"Incorrect API key provided: {api_key}. Received Authorization: {authorization}; "
        f"X-Api-Key: {x_api_key}; title {title}."
    )
    body = json.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}}
    ).encode()
    start_response(
        "401 UNAUTHORIZED",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("WWW-Authenticate", f'Bearer realm="api", error="invalid_token", token="{api_key}"'),
            ("X-Received-Api-Key", x_api_key),
            ("X-Received-Title", title),
            ("X-Error", message),
        ],
    )
    return [body]


@pytest.fixture
def upstream() -> Iterator[str]:
    server = LiveServer(careless_upstream).start()
    yield server.url
    server.stop()


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def all_logs() -> Iterator[_Collector]:
    """Every record from every logger (live server threads included), at DEBUG."""
    collector = _Collector()
    root = logging.getLogger()
    loggers = [root] + [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    levels = {logger: logger.level for logger in loggers}
    disabled = {logger: logger.disabled for logger in loggers}
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
    root.addHandler(collector)
    yield collector
    root.removeHandler(collector)
    for logger in loggers:
        logger.setLevel(levels[logger])
        logger.disabled = disabled[logger]


FORMATTER = logging.Formatter("%(name)s %(levelname)s %(message)s")


def log_lines(collector: _Collector) -> list[str]:
    """Each record as a handler would write it: message, exception text, stack."""
    return [FORMATTER.format(record) for record in collector.records]


def response_text(response: httpx2.Response, body: str | None = None) -> str:
    headers = "\n".join(f"{name}: {value}" for name, value in response.headers.items())
    return f"{response.status_code}\n{headers}\n\n{response.text if body is None else body}"


def leaks(where: str, text: str) -> list[str]:
    """Where a secret shows, with some context around the first one."""
    found = [needle for needle in NEEDLES if needle in text]
    if not found:
        return []
    at = text.index(found[0])
    return [f"{where}: {found} in …{text[max(0, at - 300) : at + 100]}…"]


def visible_text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def create_provider_through_the_form(
    admin: httpx2.Client, base_url: str, headers: Any, seen: dict[str, str]
) -> int:
    form = {
        "csrf_token": csrf_token(admin, "/providers/new"),
        "name": "Careless",
        "api_format": "openai",
        "base_url": base_url,
        "api_prefix": "/v1",
        "api_key": API_KEY,
        "headers": json.dumps(headers),
        "llm_options_defaults": "{}",
        "message_overhead_tokens": "0",
    }
    response = admin.post("/providers/", data=form)
    seen["POST /providers/"] = response_text(response)
    assert response.status_code == 303, response.text
    _db.session.expire_all()
    provider = _db.session.scalars(select(LLMProvider)).one()
    # Stored as typed: the test is about showing, not storing.
    assert provider.api_key == API_KEY
    assert provider.headers == headers
    return provider.id


def stream_reply(client: httpx2.Client, model_id: int, prompt: str) -> tuple[int, str, str]:
    """Send a first message, stream its reply; returns the reply id, raw SSE and pages."""
    data = {
        "csrf_token": csrf_token(client),
        "llm_model_id": str(model_id),
        "llm_preset_id": "",
        "system_prompt": "",
        "content": prompt,
    }
    sent = client.post("/c/new", data=data)
    assert sent.status_code == 303, sent.text
    conversation = client.get(sent.headers["Location"])
    [message_id] = [
        int(i) for i in re.findall(r'sse-connect="/messages/(\d+)/stream"', conversation.text)
    ]
    with client.stream("GET", f"/messages/{message_id}/stream") as response:
        lines = list(response.iter_lines())
    raw = response_text(response, "\n".join(lines))
    frames = list(read_frames(iter(lines)))
    assert deltas_text(frames) == ""
    final = visible_text(end_html(frames))
    assert "The provider request failed" in final and "HTTP 401" in final, final
    return message_id, raw, response_text(conversation)


@pytest.mark.parametrize("headers", CONFIGURATIONS.values(), ids=CONFIGURATIONS.keys())
def test_a_failing_provider_never_shows_its_secrets(
    app: Flask,
    upstream: str,
    admin_http: httpx2.Client,
    member_http: httpx2.Client,
    runner: FlaskCliRunner,
    all_logs: _Collector,
    headers: dict[str, str],
) -> None:
    seen: dict[str, str] = {}

    def get(client: httpx2.Client, path: str) -> httpx2.Response:
        response = client.get(path)
        seen[f"GET {path}"] = response_text(response)
        return response

    provider_id = create_provider_through_the_form(admin_http, upstream, headers, seen)
    provider = _db.session.get(LLMProvider, provider_id)
    streaming = make_model(
        provider,
        model="careless-1",
        name="Careless 1",
        key="careless",
        enabled=True,
        supports_streaming=True,
    )
    plain = make_model(provider, model="careless-2", name="Careless 2", key="plain", enabled=True)

    # Admin: every page that shows the provider, its import listing, connection tests.
    assert get(admin_http, "/providers/").status_code == 200
    assert get(admin_http, "/models/").status_code == 200
    assert get(admin_http, f"/models/{streaming.id}/edit").status_code == 200
    listing = get(admin_http, f"/providers/{provider_id}/import")
    assert "HTTP 401" in visible_text(listing.text)
    token = csrf_token(admin_http, "/models/")
    tested = admin_http.post(
        f"/models/{streaming.id}/test", headers={"HX-Request": "true", "X-CSRFToken": token}
    )
    seen["POST test (htmx)"] = response_text(tested)
    assert "HTTP 401" in visible_text(tested.text)
    tested = admin_http.post(f"/models/{plain.id}/test", data={"csrf_token": token})
    seen["POST test"] = response_text(tested)
    assert tested.status_code == 303
    flashed = get(admin_http, tested.headers["Location"])
    assert "connection failed" in flashed.text and "HTTP 401" in flashed.text

    # Admin again: the failed tests above mark both models unusable, which members cannot
    # pick; an admin still may. A streamed reply and a whole one, then the pages.
    for model in (streaming, plain):
        message_id, raw, page = stream_reply(admin_http, model.id, f"Hello {model.name}")
        seen[f"stream {model.name}"] = raw
        seen[f"conversation {model.name}"] = page
        reply = wait_for_status(message_id, {"error"})
        assert (reply.status, reply.error_code) == ("error", "LLM_REQUEST_FAILED")
        assert "HTTP 401" in reply.error_text
        assert "HTTP 401" in visible_text(get(admin_http, f"/messages/{message_id}").text)
        get(admin_http, "/")

    # The CLI, through the same services.
    for args in (
        ["chat", "--model", "careless", "Hello from the CLI"],
        ["chat", "--model", "plain", "Hello from the CLI"],
        ["models", "test", "careless"],
    ):
        result = runner.invoke(args=args)
        seen[" ".join(args)] = f"{result.output}\n{result.stderr}\n{result.exception!r}"
        assert result.exit_code == 1, result.output
        assert "LLM_REQUEST_FAILED" in result.stderr and "HTTP 401" in result.stderr

    found = [leak for where, content in seen.items() for leak in leaks(where, content)]
    with _db.engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM chat_messages")).all()
    assert len(rows) == 4
    found += leaks("chat_messages", "\n".join(repr(tuple(row)) for row in rows))
    with _db.engine.connect() as connection:
        stored = connection.execute(text("SELECT * FROM llm_providers")).all()
    found += leaks("llm_providers", "\n".join(repr(tuple(row)) for row in stored))

    lines = log_lines(all_logs)
    # The capture really saw the request log, the SDK, the HTTP transport and the database.
    names = {record.name for record in all_logs.records}
    assert {"werkzeug", "openai._base_client", "sqlalchemy.engine.Engine"} <= names, names
    assert any(name.startswith("httpcore2") for name in names), names
    assert any("HTTP 401" in line for line in lines)
    found += [leak for line in lines for leak in leaks("log", line)]
    assert not found, "\n\n".join(found)


class _FormFields(HTMLParser):
    """The fields a browser would submit from the form markup it is fed (no checkboxes)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        name = attributes.get("name")
        if tag == "input" and name and attributes.get("type") not in ("checkbox", "submit"):
            self.fields.setdefault(name, attributes.get("value", ""))
        elif tag == "textarea" and name:
            self._textarea, self.fields[name] = name, ""
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in attributes:
            self.fields[self._select] = attributes.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.fields[self._textarea] += data


def test_the_provider_edit_form_never_shows_a_header_value(
    admin_client: FlaskClient,
) -> None:
    headers = {**SECRET_HEADERS, "X-Title": TITLE}
    provider = make_provider(name="Careless", api_key=API_KEY, headers=headers)

    page = admin_client.get(f"/providers/{provider.id}/edit").get_data(as_text=True)

    assert not leaks("the edit form", page), leaks("the edit form", page)
    # Every value is hidden, secret-looking or not; every header name is there.
    for shown in ("Authorization", "X-Api-Key", "X-Title"):
        assert shown in page
    # Saved as shown, unchanged, the provider keeps its real secrets.
    form = _FormFields()
    form.feed(page.split('class="card danger-zone"')[0])
    response = admin_client.post(f"/providers/{provider.id}", data=form.fields)
    assert response.status_code == 303, response.get_data(as_text=True)
    _db.session.expire_all()
    saved = _db.session.get(LLMProvider, provider.id)
    assert saved.headers == headers
    assert saved.api_key == API_KEY


# --- the log scrubber on its own ------------------------------------------------------------

LOGGED_SECRETS = [
    "headers {'Authorization': 'Bearer tok-QWERTY-1', 'X-Title': 'ModelDesk'}",
    'headers {"X-Api-Key": "tok-QWERTY-1", "X-Title": "ModelDesk"}',
    "return_value=(b'HTTP/1.1', 401, [(b'X-Received-Api-Key', b'tok-QWERTY-1')])",
    "upstream said X-Api-Key: tok-QWERTY-1; try again",
    'WWW-Authenticate: Bearer realm="api", token="tok-QWERTY-1"',
    "Authorization: Bearer tok-QWERTY-1",
    "Authorization: Basic tok-QWERTY-1==",
    "login with password=tok-QWERTY-1 failed",
    "proxy sent Cookie: session=tok-QWERTY-1",
]
HARMLESS_LOGS = [
    '127.0.0.1 - - [25/Nov/2026 10:29:09] "GET /c/1?page=2 HTTP/1.1" 200 -',
    "usage {'prompt_tokens': 12, 'completion_tokens': 3, 'total_tokens': 15}",
    "max_tokens=5 context_window_tokens: 0 token_estimation enabled",
    "SELECT users.id, users.password_hash FROM users WHERE users.email = ?",
    "Col ('id', 'email', 'password_hash', 'role', 'api_key', 'headers', 'created_at')",
    "[(b'Content-Type', b'application/json'), (b'Vary', b'HX-Request, Cookie')]",
    "LLM request to mock failed: the provider answered HTTP 401: invalid key",
]


@pytest.mark.parametrize("logged", LOGGED_SECRETS)
def test_the_log_scrubber_masks_secret_shaped_values(logged: str) -> None:
    clean = scrub_log_text(logged)
    assert "tok-QWERTY-1" not in clean and "QWERTY" not in clean, clean
    assert "[redacted]" in clean


@pytest.mark.parametrize("logged", HARMLESS_LOGS)
def test_the_log_scrubber_leaves_ordinary_lines_alone(logged: str) -> None:
    assert scrub_log_text(logged) == logged


def test_the_log_scrubber_masks_remembered_secrets_anywhere_and_exceptions_too() -> None:
    remember_secrets(["opaque-ZXCVB-value"])
    assert scrub_log_text("echo: opaque-ZXCVB-value!") == "echo: [redacted]!"
    try:
        raise RuntimeError("the provider said opaque-ZXCVB-value is wrong")
    except RuntimeError:
        record = logging.getLogger("webapp.test").makeRecord(
            "webapp.test", logging.ERROR, __file__, 1, "failed: %s", ("x",), sys.exc_info()
        )
    formatted = FORMATTER.format(record)
    assert "ZXCVB" not in formatted and "the provider said [redacted] is wrong" in formatted


def test_sqlalchemy_rows_and_parameters_are_logged_without_their_values() -> None:
    engine_log = logging.getLogger("sqlalchemy.engine.Engine")
    row = engine_log.makeRecord(
        engine_log.name, logging.DEBUG, __file__, 1, "Row %r", (("id", "opaque-row"),), None
    )
    parameters = engine_log.makeRecord(
        engine_log.name, logging.INFO, __file__, 1, "[%s] %r", ("cached", ("opaque",)), None
    )
    statement = engine_log.makeRecord(
        engine_log.name, logging.INFO, __file__, 1, "SELECT 1 WHERE x = ?", (), None
    )
    assert "opaque" not in row.getMessage() and row.getMessage().startswith("Row [values hidden")
    assert parameters.getMessage().startswith("[cached] [values hidden")
    assert "opaque" not in parameters.getMessage()
    assert statement.getMessage() == "SELECT 1 WHERE x = ?"
