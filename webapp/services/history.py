"""Reading the configuration history (written by the flush listener in
webapp.models.history): newest first, filtered by age, entity type and actor."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from webapp.extensions import db
from webapp.models import ConfigChange
from webapp.models.history import ENTITY_TYPES
from webapp.models.types import utcnow

ENTITY_TYPE_NAMES = tuple(sorted(ENTITY_TYPES.values()))
DEFAULT_LIMIT = 500


@dataclass(frozen=True)
class HistoryFilters:
    since_days: float | None = None
    entity_type: str | None = None
    actor: str | None = None


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
