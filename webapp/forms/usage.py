"""The Usage page's filters, read from the query string: typed values for the service, and a
message per field for what does not parse (shown next to the field, never a 500)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from werkzeug.datastructures import MultiDict

from webapp.forms.composer import row_id
from webapp.models.validation import UNSTORABLE_CHARACTERS
from webapp.services.usage_reports import UsageFilters

# Without dates the page shows the last 30 days; a range is at most about a year (one bar a
# day in the chart).
DEFAULT_DAYS = 30
MAX_DAYS = 366
MAX_ARGUMENT_LENGTH = 100
KEY_KINDS = ("key", "user")
DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _argument(args: MultiDict[str, str], name: str) -> str:
    """The argument as typed, minus what no page can show, cut to a sane length."""
    return UNSTORABLE_CHARACTERS.sub("", args.get(name, "")).strip()[:MAX_ARGUMENT_LENGTH]


class UsageQuery:
    """`key` ("key:<id>" or "user:<id>"), `model` (a model id), `from` / `to` (UTC days,
    YYYY-MM-DD, both included). The values stay as typed, for the form to show back."""

    def __init__(self, args: MultiDict[str, str], today: date) -> None:
        self.key = _argument(args, "key")
        self.model = _argument(args, "model")
        self.date_from = _argument(args, "from")
        self.date_to = _argument(args, "to")
        self.errors: dict[str, str] = {}
        self._app_key_id, self._user_id = self._parse_key()
        self._llm_model_id = self._parse_model()
        self.first_day, self.last_day = self._parse_range(today)

    def _parse_key(self) -> tuple[int | None, int | None]:
        if not self.key:
            return None, None
        kind, _, number = self.key.partition(":")
        identifier = row_id(number)
        if kind not in KEY_KINDS or not identifier:
            self.errors["key"] = "choose a key or user from the list"
            return None, None
        return (identifier, None) if kind == "key" else (None, identifier)

    def _parse_model(self) -> int | None:
        identifier = row_id(self.model)
        if identifier == 0:
            self.errors["model"] = "choose a model from the list (a model id is a number)"
        return identifier or None

    def _parse_range(self, today: date) -> tuple[date, date]:
        last = self._parse_day("to", self.date_to) or today
        first = self._parse_day("from", self.date_from) or last - timedelta(days=DEFAULT_DAYS - 1)
        if "from" in self.errors or "to" in self.errors:
            return first, last
        if first > last:
            self.errors["to"] = "must be the same day as From or later"
        elif (last - first).days >= MAX_DAYS:
            self.errors["from"] = f"the range can be at most {MAX_DAYS} days"
        return first, last

    def _parse_day(self, name: str, text: str) -> date | None:
        if not text:
            return None
        # fromisoformat alone would also take 20261201 and week dates: one form only.
        if DAY.fullmatch(text):
            try:
                return date.fromisoformat(text)
            except ValueError:
                pass
        self.errors[name] = f"“{text}” is not a date: use YYYY-MM-DD, e.g. 2026-12-01"
        return None

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def filters(self) -> UsageFilters:
        return UsageFilters.for_days(
            self.first_day,
            self.last_day,
            app_key_id=self._app_key_id,
            user_id=self._user_id,
            llm_model_id=self._llm_model_id,
        )

    def as_args(self) -> dict[str, Any]:
        """The query arguments as given (for the CSV link of the same filters)."""
        pairs = {"key": self.key, "model": self.model, "from": self.date_from, "to": self.date_to}
        return {name: value for name, value in pairs.items() if value}
