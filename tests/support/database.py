"""The test database: dropped and rebuilt once a session, emptied after every test."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Engine, MetaData, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from webapp.extensions import db as _db


def drop_everything() -> None:
    """Drop every table (on PostgreSQL the whole public schema), whatever made them."""
    with _db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        else:
            existing = MetaData()
            existing.reflect(bind=connection)
            existing.drop_all(bind=connection)


@contextlib.contextmanager
def postgres_database_beside(url: str, suffix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the server `url` names, called after its database
    plus `suffix` (one a killed run left is replaced); dropped with its connections on the
    way out. Yields its URL."""
    server = make_url(url)
    name = f"{server.database}{suffix}"
    drop_database(url, name)
    try:
        yield create_database(url, name)
    finally:
        drop_database(url, name)


def create_database(server_url: str, name: str) -> str:
    """A new PostgreSQL database `name` on the server of `server_url`; returns its URL."""
    _as_admin(server_url, "CREATE DATABASE {}", name)
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    """Drop the PostgreSQL database `name` (if there) and its connections."""
    _as_admin(server_url, "DROP DATABASE IF EXISTS {} WITH (FORCE)", name)


def _as_admin(server_url: str, statement: str, name: str) -> None:
    # PostgreSQL cuts longer names silently: two of them could become one (and be dropped).
    assert len(name.encode()) <= 63, f"database name too long: {name}"
    admin = make_url(server_url).set(drivername="postgresql", database="postgres")
    # CREATE / DROP DATABASE cannot run inside a transaction.
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(sql.SQL(statement).format(sql.Identifier(name)))


def empty_tables() -> None:
    """Delete every row, keeping the schema (faster than rebuilding it for every test)."""
    tables = [t.name for t in reversed(_db.metadata.sorted_tables)]
    with _db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(text(f"DELETE FROM {table}"))


class DatabaseOutage:
    """Makes every statement on an engine fail as if the server had gone away, until
    `end()`: the driver's error, raised where the driver would raise it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.away = False
        event.listen(engine, "before_cursor_execute", self._refuse)

    def _refuse(self, *_args: Any, **_kwargs: Any) -> None:
        if self.away:
            raise OperationalError("(outage)", {}, ConnectionError("the database went away"))

    def start(self) -> None:
        self.away = True

    def end(self) -> None:
        self.away = False

    def remove(self) -> None:
        self.away = False
        event.remove(self.engine, "before_cursor_execute", self._refuse)
