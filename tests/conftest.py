"""Fixtures: one migrated database per test session, emptied after every test.

The database is SQLite (a file in a temp folder, so a live server thread shares it) unless
TEST_DATABASE_URL names another one, e.g. postgresql://postgres@127.0.0.1:5432/modeldesk_test
(.ci/run runs the suite on both).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from flask_migrate import upgrade
from sqlalchemy import MetaData, text

from webapp import create_app
from webapp.extensions import db as _db

TEST_ENCRYPTION_KEY = "test-encryption-key-0123456789abcdef"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"


def make_config(database_url: str, instance_path: str, **extra: Any) -> dict[str, Any]:
    return {
        "MODELDESK_ENV": "test",
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SECRET_KEY": "test-secret-key",
        "MODELDESK_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "INSTANCE_PATH": instance_path,
        **extra,
    }


@pytest.fixture(scope="session")
def _migrated(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Drop whatever a previous run left, then build the schema from the migrations."""
    app = create_app(make_config(database_url, str(tmp_path_factory.mktemp("instance"))))
    with app.app_context():
        _drop_everything()
        upgrade()
        _db.engine.dispose()
    return database_url


def _drop_everything() -> None:
    with _db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        else:
            existing = MetaData()
            existing.reflect(bind=connection)
            existing.drop_all(bind=connection)


def _empty_tables() -> None:
    tables = [t.name for t in reversed(_db.metadata.sorted_tables)]
    with _db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
def app(_migrated: str, tmp_path: Any) -> Iterator[Flask]:
    app = create_app(make_config(_migrated, str(tmp_path)))
    with app.app_context():
        yield app
        _db.session.remove()
        _empty_tables()
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
