"""The test database: dropped and rebuilt once a session, emptied after every test."""

from __future__ import annotations

from sqlalchemy import MetaData, text

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


def empty_tables() -> None:
    """Delete every row, keeping the schema (faster than rebuilding it for every test)."""
    tables = [t.name for t in reversed(_db.metadata.sorted_tables)]
    with _db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(text(f"DELETE FROM {table}"))
