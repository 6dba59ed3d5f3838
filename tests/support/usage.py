"""Usage events to record, and the usage rows as stored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from webapp.extensions import db
from webapp.models import UsageRecord
from webapp.services.usage import GATEWAY, UsageEvent


def usage_event(**fields: Any) -> UsageEvent:
    """A successful gateway call of app key 1 to "mock", unless `fields` say otherwise."""
    values: dict[str, Any] = {
        "source": GATEWAY,
        "status": 200,
        "total_ms": 120.0,
        "stream": True,
        "model_key": "mock",
        "app_key_id": 1,
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "ttft_ms": 15.0,
    }
    return UsageEvent(**{**values, **fields})


def on_day(day: str, hour: int = 12) -> datetime:
    """A moment of a UTC day given as YYYY-MM-DD."""
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def stored_usage() -> list[UsageRecord]:
    db.session.expire_all()
    return list(db.session.scalars(db.select(UsageRecord).order_by(UsageRecord.id)))
