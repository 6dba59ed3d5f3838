"""Usage reports: what the recorded usage says, for the Usage page, its CSV and `flask usage`.

Reading groups the records (see `webapp.services.usage`) per app key or user and per model:
`summary` for the table, `daily_series` for the chart, `export_rows` and `csv_lines` for the
CSV, `key_choices` and `model_choices` for the filter menus.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, select

from webapp.extensions import db
from webapp.models import AppKey, LLMModel, UsageRecord, User
from webapp.services.usage import CHAT


@dataclass(frozen=True)
class UsageFilters:
    """Which records to read: a time range (since inclusive, until exclusive), one app key or
    one user, one model."""

    since: datetime | None = None
    until: datetime | None = None
    app_key_id: int | None = None
    user_id: int | None = None
    llm_model_id: int | None = None

    @classmethod
    def last_days(cls, days: float | None) -> UsageFilters:
        return cls(since=datetime.now(UTC) - timedelta(days=days) if days is not None else None)

    @classmethod
    def for_days(cls, first: date, last: date, **others: int | None) -> UsageFilters:
        """Whole UTC days, `first` to `last` included."""
        return cls(since=_day_start(first), until=_day_start(last + timedelta(days=1)), **others)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _filtered(query: Select[Any], filters: UsageFilters) -> Select[Any]:
    conditions: list[ColumnElement[bool]] = []
    if filters.since is not None:
        conditions.append(UsageRecord.created_at >= filters.since)
    if filters.until is not None:
        conditions.append(UsageRecord.created_at < filters.until)
    if filters.app_key_id is not None:
        conditions.append(UsageRecord.app_key_id == filters.app_key_id)
    if filters.user_id is not None:
        conditions.append(UsageRecord.user_id == filters.user_id)
    if filters.llm_model_id is not None:
        conditions.append(UsageRecord.llm_model_id == filters.llm_model_id)
    return query.where(*conditions)


# Who made a request and which model answered, as columns to select and group by.
_WHO = (UsageRecord.source, UsageRecord.app_key_id, UsageRecord.user_id, User.email, AppKey.name)
_MODEL = (UsageRecord.llm_model_id, UsageRecord.model_key, LLMModel.key, LLMModel.name)


def _joined(query: Select[Any]) -> Select[Any]:
    return (
        query.outerjoin(User, User.id == UsageRecord.user_id)
        .outerjoin(AppKey, AppKey.id == UsageRecord.app_key_id)
        .outerjoin(LLMModel, LLMModel.id == UsageRecord.llm_model_id)
    )


def who_label(
    source: str,
    app_key_id: int | None,
    user_id: int | None,
    email: str | None,
    key_name: str | None,
) -> str:
    """The app key's name for a gateway call, the user's email for a chat reply."""
    if app_key_id is not None:
        return key_name or f"key #{app_key_id}"
    if email is not None:
        return email
    if source == CHAT:
        return f"user #{user_id}" if user_id is not None else "deleted user"
    return "unknown key"


def model_label(
    llm_model_id: int | None, model_key: str | None, key: str | None, name: str | None
) -> str:
    """What was asked for; else the model's key or name; else that it is gone."""
    label = model_key or key or name
    if label:
        return label
    return f"model #{llm_model_id}" if llm_model_id is not None else "deleted model"


def _errors() -> ColumnElement[int]:
    return func.sum(case((UsageRecord.status >= 400, 1), else_=0))


def _tokens(column: Any) -> ColumnElement[int]:
    return func.coalesce(func.sum(column), 0)


@dataclass(frozen=True)
class SummaryRow:
    """Requests, errors (status ≥ 400) and tokens of one key or user with one model."""

    key: str
    model: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    estimated: int  # requests whose tokens were estimated here

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "model": self.model,
            "requests": self.requests,
            "errors": self.errors,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }


def summary(filters: UsageFilters | None = None) -> list[SummaryRow]:
    """Per key (or user) and model: requests, errors, prompt and completion tokens; the
    busiest first."""
    requests = func.count(UsageRecord.id)
    query = _joined(
        select(
            *_WHO,
            *_MODEL,
            requests,
            _errors(),
            _tokens(UsageRecord.prompt_tokens),
            _tokens(UsageRecord.completion_tokens),
            func.sum(case((UsageRecord.estimated, 1), else_=0)),
        )
    ).group_by(*_WHO, *_MODEL)
    rows = db.session.execute(_filtered(query, filters or UsageFilters())).all()
    summaries = [
        SummaryRow(
            key=who_label(*row[0:5]),
            model=model_label(*row[5:9]),
            requests=row[9],
            errors=int(row[10] or 0),
            prompt_tokens=int(row[11]),
            completion_tokens=int(row[12]),
            estimated=int(row[13] or 0),
        )
        for row in rows
    ]
    return sorted(summaries, key=lambda s: (-s.requests, s.key, s.model))


@dataclass(frozen=True)
class DayPoint:
    day: date
    requests: int
    errors: int


def _day_of(column: Any) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamp, in the database's own terms."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)  # SQLite keeps UTC timestamps as ISO text


def daily_series(filters: UsageFilters | None = None) -> list[DayPoint]:
    """Requests and errors per UTC day, every day of the range (days without any as zeros):
    the filters' range (open-ended: up to today), else the first to the last day recorded."""
    filters = filters or UsageFilters()
    day = _day_of(UsageRecord.created_at)
    query = _filtered(select(day, func.count(UsageRecord.id), _errors()).group_by(day), filters)
    counts = {
        date.fromisoformat(str(day_value)): (requests, int(errors or 0))
        for day_value, requests, errors in db.session.execute(query)
    }
    first = filters.since.date() if filters.since is not None else min(counts, default=None)
    if filters.until is not None:
        last: date | None = (filters.until - timedelta(microseconds=1)).date()
    elif filters.since is not None:
        last = datetime.now(UTC).date()
    else:
        last = max(counts, default=None)
    if first is None or last is None:
        return []
    days = (first + timedelta(days=offset) for offset in range((last - first).days + 1))
    return [DayPoint(d, *counts.get(d, (0, 0))) for d in days]


EXPORT_HEADERS = (
    "created_at",
    "source",
    "key",
    "model",
    "preset",
    "status",
    "error_code",
    "prompt_tokens",
    "completion_tokens",
    "estimated",
    "ttft_ms",
    "total_ms",
    "stream",
)


def export_rows(filters: UsageFilters | None = None) -> Iterator[list[Any]]:
    """Every record in the filters, oldest first, as CSV cells (EXPORT_HEADERS); read in
    chunks, so a long export never holds every row at once."""
    query = _filtered(
        _joined(select(UsageRecord, User.email, AppKey.name, LLMModel.key, LLMModel.name)),
        filters or UsageFilters(),
    ).order_by(UsageRecord.created_at, UsageRecord.id)
    rows = db.session.execute(query.execution_options(yield_per=500))
    for record, email, key_name, key, name in rows:
        yield [
            record.created_at.isoformat(),
            record.source,
            who_label(record.source, record.app_key_id, record.user_id, email, key_name),
            model_label(record.llm_model_id, record.model_key, key, name),
            record.preset_key or "",
            record.status,
            record.error_code or "",
            _blank_if_none(record.prompt_tokens),
            _blank_if_none(record.completion_tokens),
            int(record.estimated),
            _blank_if_none(record.ttft_ms),
            record.total_ms,
            int(record.stream),
        ]


def _blank_if_none(value: Any) -> Any:
    return "" if value is None else value


# A cell a spreadsheet would run as a formula (a model name a gateway caller chose).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_lines(rows: Iterable[list[Any]]) -> Iterator[str]:
    """The header line, then one line per row; text cells that a spreadsheet would take for
    a formula are quoted with a leading apostrophe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in _with_header(rows):
        writer.writerow([_defused(cell) for cell in row])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def _with_header(rows: Iterable[list[Any]]) -> Iterator[list[Any]]:
    yield list(EXPORT_HEADERS)
    yield from rows


def _defused(cell: Any) -> Any:
    if isinstance(cell, str) and cell.startswith(_FORMULA_STARTS):
        return "'" + cell
    return cell


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


def key_choices() -> list[Choice]:
    """The app keys and users that have usage, for a filter menu ("key:3", "user:5")."""
    query = _joined(select(*_WHO).distinct()).where(
        (UsageRecord.app_key_id.is_not(None)) | (UsageRecord.user_id.is_not(None))
    )
    choices = {
        (f"key:{app_key_id}" if app_key_id is not None else f"user:{user_id}"): who_label(
            source, app_key_id, user_id, email, key_name
        )
        for source, app_key_id, user_id, email, key_name in db.session.execute(query)
    }
    return sorted((Choice(v, label) for v, label in choices.items()), key=lambda c: c.label)


def model_choices() -> list[Choice]:
    """The models that have usage, for a filter menu (by id)."""
    query = (
        select(LLMModel.id, LLMModel.key, LLMModel.name)
        .where(LLMModel.id.in_(select(UsageRecord.llm_model_id).distinct()))
        .order_by(LLMModel.name)
    )
    return [Choice(str(model_id), key or name) for model_id, key, name in db.session.execute(query)]
