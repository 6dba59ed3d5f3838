"""Fixtures for the tests that need a real PostgreSQL going away: its connections cut by a
proxy. Loaded as a pytest plugin from conftest.py (the chat replies and the gateway use it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.engine import make_url

from tests.support.app import LiveServer, make_config, stop_replies
from tests.support.net import TcpProxy
from webapp import create_app
from webapp.extensions import db as _db


@pytest.fixture
def cut_database(app: Flask, tmp_path: Any) -> Iterator[tuple[LiveServer, TcpProxy]]:
    """The app served with its PostgreSQL reached through a proxy the test can cut."""
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() != "postgresql":
        pytest.skip("cutting a database server's connections needs PostgreSQL (SQLite is a file)")
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    served = create_app(make_config(proxied, str(tmp_path / "proxied")))
    server = LiveServer(served)
    served.config["MOCK_LLM_BASE_URL"] = server.url
    server.start()
    yield server, proxy
    server.stop()
    stop_replies(served)
    proxy.restore()
    with served.app_context():
        _db.engine.dispose()
    proxy.cut()
