"""Pooled PostgreSQL connections are checked only after sitting idle: one that died while idle
(a database restart, a proxy's cut) is replaced before anyone uses it, and one in steady use
costs no ping — when it dies under load its statement fails once and the pool starts over."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import Engine, create_engine, exc, make_url, text

from tests.support.net import TcpProxy
from webapp.db_pool import ping_idle_connections


@pytest.fixture
def proxied(app: Flask) -> Iterator[tuple[str, TcpProxy]]:
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() != "postgresql":
        pytest.skip("cutting a database server's connections needs PostgreSQL (SQLite is a file)")
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    yield url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), proxy
    proxy.cut()


def one_connection_engine(url: str, idle_seconds: float) -> Engine:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    ping_idle_connections(engine, idle_seconds=idle_seconds)
    return engine


def select_one(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT 1")).scalar_one()


def test_a_connection_that_died_while_idle_is_replaced_before_use(
    proxied: tuple[str, TcpProxy],
) -> None:
    url, proxy = proxied
    engine = one_connection_engine(url, idle_seconds=0.0)
    assert select_one(engine) == 1

    proxy.cut()  # the pooled connection dies; new ones are accepted again after restore
    proxy.restore()

    assert select_one(engine) == 1
    engine.dispose()


def test_a_connection_in_steady_use_is_not_pinged_and_a_dead_one_fails_once(
    proxied: tuple[str, TcpProxy],
) -> None:
    url, proxy = proxied
    engine = one_connection_engine(url, idle_seconds=3600.0)
    assert select_one(engine) == 1

    proxy.cut()
    proxy.restore()

    with pytest.raises(exc.OperationalError) as failed:
        select_one(engine)
    assert failed.value.connection_invalidated
    assert select_one(engine) == 1
    engine.dispose()
