"""URL converters."""

from __future__ import annotations

from typing import Any

from werkzeug.routing import IntegerConverter, Map

from webapp.models.validation import MAX_INT


def whole_numbers_up_to(limit: int) -> str:
    """A regular expression matching exactly the numbers 1..limit (no sign, no leading zero)."""
    digits = str(limit)
    width = len(digits)
    options = [f"[1-9][0-9]{{0,{width - 2}}}"] if width > 1 else []
    for position, digit in enumerate(digits):
        lowest = 1 if position == 0 else 0
        if int(digit) > lowest:
            rest = width - position - 1
            options.append(f"{digits[:position]}[{lowest}-{int(digit) - 1}][0-9]{{{rest}}}")
    options.append(digits)
    return "(?:" + "|".join(options) + ")"


class IdConverter(IntegerConverter):
    """`<id:name>`: a row id, 1..2**31-1.

    Anything else (0, text, a number too large for the column) does not match the route at
    all, so it is a 404 for every method — never a database error, nor a 405 because another
    method's rule has the same path (werkzeug checks methods before converting values).
    """

    regex = whole_numbers_up_to(MAX_INT)

    def __init__(self, url_map: Map, **kwargs: Any) -> None:
        super().__init__(url_map, min=1, max=MAX_INT, **kwargs)
