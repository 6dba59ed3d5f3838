"""Reading the configuration history (written by the flush listener in
webapp.models.history): newest first, filtered by age, entity type and actor."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from webapp.extensions import db
from webapp.models import ConfigChange, LLMModel, LLMPreset, LLMProvider
from webapp.models.history import ENTITY_TYPES
from webapp.models.types import utcnow
from webapp.services import records

ENTITY_TYPE_NAMES = tuple(sorted(ENTITY_TYPES.values()))
DEFAULT_LIMIT = 500


@dataclass(frozen=True)
class HistoryFilters:
    since_days: float | None = None
    entity_type: str | None = None
    actor: str | None = None
    # One record's history (with entity_type): a provider's or a model's page links here.
    entity_id: int | None = None


def list_changes(filters: HistoryFilters, limit: int | None = DEFAULT_LIMIT) -> list[ConfigChange]:
    """The changes matching `filters`, newest first (at most `limit`; None: all)."""
    query = select(ConfigChange).order_by(ConfigChange.changed_at.desc(), ConfigChange.id.desc())
    if filters.since_days is not None:
        query = query.where(
            ConfigChange.changed_at >= utcnow() - timedelta(days=filters.since_days)
        )
    if filters.entity_type:
        query = query.where(ConfigChange.entity_type == filters.entity_type)
    if filters.actor:
        query = query.where(ConfigChange.actor == filters.actor)
    if filters.entity_id is not None:
        query = query.where(ConfigChange.entity_id == filters.entity_id)
    if limit is not None:
        query = query.limit(limit)
    return list(db.session.scalars(query))


def actors() -> list[str]:
    """Everyone (users, commands) who has changed the configuration, sorted."""
    return sorted(db.session.scalars(select(ConfigChange.actor).distinct()))


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def describe(changes: dict[str, Any]) -> list[str]:
    """One line per field: `name: 'a' → 'b'`; a secret as `api_key: changed`."""
    lines = []
    for field in sorted(changes):
        change = changes[field]
        if change.get("changed"):
            names = change.get("after_names")
            lines.append(f"{field}: changed" + (f" ({', '.join(names)})" if names else ""))
        else:
            lines.append(f"{field}: {_shown(change['before'])} → {_shown(change['after'])}")
    return lines


def as_json(change: ConfigChange) -> dict[str, Any]:
    return {
        "id": change.id,
        "changed_at": change.changed_at.isoformat(),
        "actor": change.actor,
        "action": change.action,
        "entity_type": change.entity_type,
        "entity_id": change.entity_id,
        "entity": change.entity_label,
        "changes": change.changes,
    }


RECORD_TYPES: dict[str, Any] = {"provider": LLMProvider, "model": LLMModel, "preset": LLMPreset}


class RestoreError(Exception):
    """The change cannot be restored (not an update, or its row is gone); nothing changed."""


def restorable_values(change: ConfigChange) -> dict[str, Any]:
    """The "before" values an update can be undone with; secrets are never stored, so a
    changed API key or header stays as it is."""
    if change.action != "update":
        return {}
    return {
        field: value["before"]
        for field, value in change.changes.items()
        if isinstance(value, dict) and not value.get("changed") and "before" in value
    }


def restore(change: ConfigChange) -> Any:
    """Apply an update's "before" values to its row (recorded like any change); returns the
    row. Raises RestoreError, or ValidationError when the old values are no longer valid
    (say, a key another model took since)."""
    values = restorable_values(change)
    if not values:
        raise RestoreError("only an update with non-secret fields can be restored")
    record = db.session.get(RECORD_TYPES[change.entity_type], change.entity_id)
    if record is None:
        raise RestoreError(f"{change.entity_type} {change.entity_label} no longer exists")
    return records.save(record, values)
