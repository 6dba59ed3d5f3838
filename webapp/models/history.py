"""A history of every change to providers, models and presets.

A session listener diffs the ORM attribute history of each provider, model and preset a
flush creates, updates or deletes, and writes one `config_changes` row per record in the same
transaction: every write path (pages, CLI, seeds, imports, scripts) is covered without each
having to remember. Who made the change comes from `acting_as` (CLI commands, seeds), else the
signed-in user of the request, else the click command being run, else "system".

Secrets (the API key, header values) are never written here: a change to one shows only as
`{"changed": true}` (header names, which are not secret, are listed).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from flask import has_request_context
from sqlalchemy import JSON, Index, String, event, insert, inspect, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column

from webapp.extensions import db
from webapp.models.llm import LLMModel, LLMPreset, LLMProvider
from webapp.models.types import UTCDateTime, utcnow

ENTITY_TYPES = {LLMProvider: "provider", LLMModel: "model", LLMPreset: "preset"}
SECRET_FIELDS = frozenset({"api_key", "headers"})
# Bookkeeping, not configuration: never part of a change.
IGNORED_FIELDS = frozenset(
    {
        "id",
        "created_at",
        "updated_at",
        "version",
        "connection_tested_at",
        "capabilities_probed_at",
        "connection_failed_at",
        "connection_error",
    }
)

_actor: ContextVar[str | None] = ContextVar("config_change_actor", default=None)
_PENDING = "config_changes_pending"


class ConfigChange(db.Model):
    __tablename__ = "config_changes"
    __table_args__ = (Index("ix_config_changes_entity", "entity_type", "entity_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    changed_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, nullable=False, index=True
    )
    actor: Mapped[str] = mapped_column(String(320), nullable=False, index=True)
    action: Mapped[str] = mapped_column(String(16), nullable=False)  # create, update, delete
    entity_type: Mapped[str] = mapped_column(String(16), nullable=False)
    entity_id: Mapped[int] = mapped_column(nullable=False)  # no FK: the row may be gone
    entity_label: Mapped[str] = mapped_column(String(1000), nullable=False)
    # field → {"before": …, "after": …}, or {"changed": true} for a secret.
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)

    def __repr__(self) -> str:
        return f"<ConfigChange {self.id} {self.action} {self.entity_type} {self.entity_label!r}>"


@contextmanager
def acting_as(actor: str, *, unless_set: bool = False) -> Iterator[None]:
    """Record the changes made inside the block as `actor` (a command name, "seed").

    `unless_set`: keep an actor an outer block already named (seeds run by `flask up`)."""
    if unless_set and _actor.get() is not None:
        yield
        return
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


def current_actor() -> str:
    named = _actor.get()
    if named:
        return named
    if has_request_context():
        from flask_login import current_user

        try:
            if current_user and current_user.is_authenticated:
                return str(current_user.email)
        except SQLAlchemyError:
            pass  # a user object no longer bound to a session: fall through
    import click

    context = click.get_current_context(silent=True)
    if context is not None:
        return "flask " + " ".join(context.command_path.split()[1:])
    return "system"


def _label(record: Any) -> str:
    if isinstance(record, LLMProvider):
        return str(record.name)
    if isinstance(record, LLMModel):
        provider = record.llm_provider
        return f"{provider.name if provider else '?'}/{record.model}"
    model = record.llm_model
    return f"{_label(model) if model else '?'}/{record.key or record.name}"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _fields(record: Any) -> list[str]:
    return [
        column.key for column in type(record).__table__.columns if column.key not in IGNORED_FIELDS
    ]


def _secret_change(field: str, before: Any, after: Any) -> dict[str, Any]:
    change: dict[str, Any] = {"changed": True}
    if field == "headers":
        change["before_names"] = sorted(before or {})
        change["after_names"] = sorted(after or {})
    return change


def _snapshot(record: Any, *, after: bool) -> dict[str, Any]:
    """Every field of a created (after) or deleted (before) record."""
    changes: dict[str, Any] = {}
    for field in _fields(record):
        value = getattr(record, field)
        if field in SECRET_FIELDS:
            if value:
                changes[field] = _secret_change(field, None, value) if after else {"changed": True}
            continue
        changes[field] = (
            {"before": None, "after": _plain(value)}
            if after
            else {
                "before": _plain(value),
                "after": None,
            }
        )
    return changes


def _diff(record: Any) -> dict[str, Any]:
    state = inspect(record)
    changes: dict[str, Any] = {}
    for field in _fields(record):
        history = state.attrs[field].history
        if not history.has_changes():
            continue
        before = history.deleted[0] if history.deleted else None
        after = history.added[0] if history.added else None
        if before == after:
            continue
        if field in SECRET_FIELDS:
            changes[field] = _secret_change(field, before, after)
        else:
            changes[field] = {"before": _plain(before), "after": _plain(after)}
    return changes


def _row(action: str, record: Any, changes: dict[str, Any], actor: str) -> dict[str, Any]:
    return {
        "changed_at": utcnow(),
        "actor": actor,
        "action": action,
        "entity_type": ENTITY_TYPES[type(record)],
        "entity_id": record.id,
        "entity_label": _label(record)[:1000],
        "changes": changes,
    }


def _cascaded(session: Session, record: Any) -> list[Any]:
    """The models and presets the database will delete with `record` (ON DELETE CASCADE)."""
    if isinstance(record, LLMProvider):
        models = list(
            session.scalars(select(LLMModel).where(LLMModel.llm_provider_id == record.id))
        )
        return [*models, *(p for m in models for p in _cascaded(session, m))]
    if isinstance(record, LLMModel):
        return list(session.scalars(select(LLMPreset).where(LLMPreset.llm_model_id == record.id)))
    return []


@event.listens_for(Session, "before_flush")
def _note_deletes(session: Session, _context: Any, _instances: Any) -> None:
    # Before the DELETEs: what the database's cascade will take with them, while it is there.
    deleted = [r for r in session.deleted if type(r) in ENTITY_TYPES]
    if not deleted:
        return
    actor = current_actor()
    pending = session.info.setdefault(_PENDING, [])
    seen = {id(r) for r in deleted}
    with session.no_autoflush:
        for record in deleted:
            for child in _cascaded(session, record):
                if id(child) not in seen:
                    seen.add(id(child))
                    pending.append(_row("delete", child, _snapshot(child, after=False), actor))


_RANK = {LLMProvider: 0, LLMModel: 1, LLMPreset: 2}


def _in_order(records: Any) -> list[Any]:
    """The configuration records among `records`: providers, then models, then presets."""
    found = [r for r in records if type(r) in _RANK]
    return sorted(found, key=lambda r: (_RANK[type(r)], r.id or 0))


@event.listens_for(Session, "after_flush")
def _record_changes(session: Session, _context: Any) -> None:
    # After the flush ids exist, and the attribute history is still the flush's.
    rows: list[dict[str, Any]] = session.info.pop(_PENDING, [])
    touched = [*session.new, *session.dirty, *session.deleted]
    if not rows and not any(type(record) in ENTITY_TYPES for record in touched):
        return  # most flushes (chat transcripts, users) touch no configuration
    actor = current_actor()
    with session.no_autoflush:
        for record in _in_order(session.new):
            rows.append(_row("create", record, _snapshot(record, after=True), actor))
        for record in _in_order(session.dirty):
            changes = _diff(record) if record not in session.deleted else {}
            if changes:
                rows.append(_row("update", record, changes, actor))
        for record in _in_order(session.deleted):
            rows.append(_row("delete", record, _snapshot(record, after=False), actor))
    if rows:
        session.connection().execute(insert(ConfigChange.__table__), rows)


@event.listens_for(Session, "after_rollback")
def _forget_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


def record_bulk_enabled(session: Session, model_ids: list[int], enabled: bool) -> None:
    """History for a bulk enable/disable (an UPDATE the flush listener does not see)."""
    if not model_ids:
        return
    actor = current_actor()
    models = session.scalars(select(LLMModel).where(LLMModel.id.in_(model_ids)))
    rows = [
        _row("update", model, {"enabled": {"before": not enabled, "after": enabled}}, actor)
        for model in models
    ]
    session.connection().execute(insert(ConfigChange.__table__), rows)
