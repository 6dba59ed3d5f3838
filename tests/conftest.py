"""Fixtures: one migrated database per test session, emptied after every test.

Only fixtures live here; the helpers they use are in tests/support/.

The database is SQLite (a file in a temp folder, so a live server thread shares it) unless
TEST_DATABASE_URL names another one, e.g. postgresql://postgres@127.0.0.1:5432/modeldesk_test
(.ci/run runs the suite on both).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from flask_migrate import upgrade
from hypothesis import settings

from tests.support.app import LiveServer, live_app, make_config, stop_replies
from tests.support.database import drop_everything, empty_tables, postgres_database_beside
from tests.support.users import (
    ADMIN_EMAIL,
    MEMBER_EMAIL,
    PASSWORD,
    browser_sign_in,
    sign_in,
    signed_in_client,
)
from webapp import create_app
from webapp.extensions import db as _db
from webapp.passwords import PasswordGate

pytest_plugins = ["tests.support.mock_fixtures", "tests.support.outage_fixtures"]

# No wall-clock limit per example: CI is a loaded 2-core box, and speed is a benchmark's job.
settings.register_profile("modeldesk", deadline=None)
settings.load_profile("modeldesk")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if not url:  # each xdist worker has a temp folder of its own
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        yield url
        return
    # Under pytest-xdist (scripts/test.sh) each worker has a database of its own beside it.
    with postgres_database_beside(url, f"_{worker}") as own:
        yield own


@pytest.fixture(scope="session")
def _migrated(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Drop whatever a previous run left, then build the schema from the migrations."""
    app = create_app(make_config(database_url, str(tmp_path_factory.mktemp("instance"))))
    with app.app_context():
        drop_everything()
        upgrade()
        _db.engine.dispose()
    return database_url


@pytest.fixture
def app(_migrated: str, tmp_path: Any) -> Iterator[Flask]:
    app = create_app(make_config(_migrated, str(tmp_path)))
    with app.app_context():
        yield app
        stop_replies(app)
        _db.session.remove()
        empty_tables()
        _db.engine.dispose()


@pytest.fixture
def db(app: Flask) -> Any:
    return _db


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def live_server(app: Flask, tmp_path: Any) -> Iterator[LiveServer]:
    """A second app on the same database, served over HTTP (streaming, SDK, browser tests).

    Its mock provider base URL is its own address, as in development.
    """
    with live_app(app.config["SQLALCHEMY_DATABASE_URI"], str(tmp_path)) as server:
        yield server


@pytest.fixture
def admin(app: Flask) -> Any:
    from webapp.services.users import create_user

    user, errors = create_user(ADMIN_EMAIL, PASSWORD, role="admin")
    assert user is not None, errors
    return user


@pytest.fixture
def member(app: Flask) -> Any:
    from webapp.services.users import create_user

    user, errors = create_user(MEMBER_EMAIL, PASSWORD, role="member")
    assert user is not None, errors
    return user


@pytest.fixture
def admin_client(app: Flask, admin: Any) -> FlaskClient:
    app.config["WTF_CSRF_ENABLED"] = False
    client = app.test_client()
    sign_in(client, ADMIN_EMAIL)
    return client


@pytest.fixture
def member_client(app: Flask, member: Any) -> FlaskClient:
    app.config["WTF_CSRF_ENABLED"] = False
    client = app.test_client()
    sign_in(client, MEMBER_EMAIL)
    return client


@pytest.fixture
def admin_http(live_server: LiveServer, admin: Any) -> Iterator[httpx2.Client]:
    """An HTTP client signed in as the admin on the live server (with CSRF, like a browser)."""
    client = signed_in_client(live_server, ADMIN_EMAIL)
    yield client
    client.close()


@pytest.fixture
def member_http(live_server: LiveServer, member: Any) -> Iterator[httpx2.Client]:
    """An HTTP client signed in as the member on the live server."""
    client = signed_in_client(live_server)
    yield client
    client.close()


# Browser tests: Playwright drives Debian's Chromium (no browser download).
CHROMIUM = os.environ.get("MODELDESK_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    return {
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture(scope="session")
def base_url() -> str | None:
    # Replaces pytest-playwright's fallback fixture (a method on a plugin object, which
    # pytest 9 deprecates: an error under filterwarnings). Browser tests use absolute URLs.
    return None


@pytest.fixture
def page(page: Any) -> Any:
    """pytest-playwright's page, with 7 s instead of 30 s for each action and expectation:
    everything here answers in well under a second, so a failure shows without a long wait."""
    page.set_default_timeout(7000)
    return page


# The live server comes before the page, so it is torn down after it: a page closing
# mid-stream must still find its server.
@pytest.fixture
def admin_page(live_server: LiveServer, admin: Any, page: Any) -> Any:
    """A browser page signed in as the admin on the live server."""
    browser_sign_in(page, live_server, ADMIN_EMAIL)
    return page


@pytest.fixture
def member_page(live_server: LiveServer, member: Any, page: Any) -> Any:
    browser_sign_in(page, live_server, MEMBER_EMAIL)
    return page


@pytest.fixture
def full_gate(app: Flask) -> Iterator[PasswordGate]:
    """A one-slot password gate with a short wait, its slot taken for the whole test."""
    gate = PasswordGate(1, 0.05)
    app.extensions["password_gate"] = gate
    with gate.slot():
        yield gate
