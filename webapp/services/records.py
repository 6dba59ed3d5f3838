"""Writing configuration rows: validate without side effects, save or delete in one commit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from webapp.extensions import db
from webapp.models import LLMModel, LLMPreset, LLMProvider
from webapp.models.validation import Errors

Record = TypeVar("Record", LLMProvider, LLMModel, LLMPreset)


class StaleRecordError(Exception):
    """The row changed, or was deleted, after the version a write was based on: nothing
    was written (optimistic locking)."""


def ensure_current(
    record: LLMProvider | LLMModel | LLMPreset, expected_version: int | None
) -> None:
    """Raise StaleRecordError when `expected_version` (the version an edit was loaded with)
    is not the row's version now; None means the caller names no version: no check."""
    if expected_version is not None and record.version != expected_version:
        raise StaleRecordError


def validation_errors_for(
    model: type[Record], record: Record | None, attributes: Mapping[str, Any]
) -> Errors:
    """What `model` would say about a row with these attributes, changing nothing.

    The values go into a transient copy (same id, so uniqueness checks skip the row itself)
    that never joins the session. Relations are given by id, never by object: an object
    would pull the copy into the session through its back-reference.
    """
    probe = model(**attributes)
    probe.id = record.id if record is not None else None
    return probe.validation_errors()


def save(
    record: Record, attributes: Mapping[str, Any], expected_version: int | None = None
) -> Record:
    """Assign, validate (the flush hook), commit; on any failure roll back and re-raise.

    `expected_version`: the version the edit was based on (None: no check). Raises
    `ValidationError` (field → messages), the database's `IntegrityError`, or
    `StaleRecordError` when the row changed since that version — also when it changes
    between this request's read and its write (the UPDATE matches no row).
    """
    try:
        if record.id is not None:
            ensure_current(record, expected_version)
        with db.session.no_autoflush:
            for name, value in attributes.items():
                setattr(record, name, value)
        db.session.add(record)
        db.session.commit()
    except StaleDataError as error:
        db.session.rollback()
        raise StaleRecordError from error
    except Exception:
        db.session.rollback()
        raise
    return record


def delete(record: LLMProvider | LLMModel | LLMPreset, expected_version: int | None = None) -> None:
    """Delete a row; the database cascades to its models and presets.

    Raises `StaleRecordError` (nothing deleted) when the row is not at `expected_version`
    (None: no check), or changed or went between this request's read and its DELETE.
    """
    try:
        ensure_current(record, expected_version)
        db.session.delete(record)
        db.session.commit()
    except StaleDataError as error:
        db.session.rollback()
        raise StaleRecordError from error
    except Exception:
        db.session.rollback()
        raise


def lock_for_writing(session: Session) -> None:
    """On SQLite, take the database's write lock now, for the rest of the transaction.

    A deferred SQLite transaction that reads and then writes fails against another writer
    ("database is locked") instead of waiting; BEGIN IMMEDIATE makes the second writer wait
    for the first, and then read what the first committed. PostgreSQL needs nothing here:
    savepoints and unique constraints settle a race there.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    if not connection.connection.driver_connection.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def stamp(record: LLMProvider | LLMModel | LLMPreset, **values: Any) -> None:
    """Set bookkeeping columns (when a model was last tested or probed) with a plain UPDATE
    and commit: not an edit, so the version stays (an edit form opened before still saves)
    and a row deleted meanwhile is no error."""
    model = type(record)
    db.session.execute(
        update(model).where(model.id == record.id).values(**values),
        execution_options={"synchronize_session": "fetch"},
    )
    db.session.commit()
