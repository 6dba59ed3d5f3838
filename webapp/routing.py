"""URL pieces shared by every blueprint: a row id that is always a usable primary key."""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import IntegerConverter

# Ids are 32-bit integers: a larger number cannot be a row (and PostgreSQL would raise
# instead of finding nothing), so such a URL is a plain 404.
MAX_ID = 2**31 - 1


class RowIdConverter(IntegerConverter):
    """`<id:name>`: a whole number from 1 to MAX_ID."""

    def __init__(self, map: object) -> None:
        super().__init__(map, min=1, max=MAX_ID)


def register_converters(app: Flask) -> None:
    app.url_map.converters["id"] = RowIdConverter
