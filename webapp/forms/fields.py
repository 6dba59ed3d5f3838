"""Field types and validators shared by the forms.

Every field shows on error exactly what the user typed, and every problem is a message on its
field (a WTForms processing or validation error), never an exception.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from wtforms import BooleanField, Field, Form
from wtforms.validators import StopValidation, ValidationError
from wtforms.widgets import HiddenInput

from webapp.models.validation import MAX_INT, UNSTORABLE_MESSAGE, is_storable
from webapp.templating import pretty_json

MAX_JSON_DEPTH = 32

_WHOLE_NUMBER = re.compile(r"\+?[0-9]+")
_NEGATIVE_NUMBER = re.compile(r"-[0-9]+")


def _typed_text(field: Field) -> str | None:
    """What the user sent for `field` ("" when the post left it out); None on a fresh form."""
    if field.raw_data is None:
        return None
    value = field.raw_data[0] if field.raw_data else ""
    return value if isinstance(value, str) else ""


class TextField(Field):
    """Text exactly as typed. A post without the field means blank, not the stored value."""

    def process_data(self, value: Any) -> None:
        self.data = "" if value is None else value

    def process_formdata(self, valuelist: list[Any]) -> None:
        self.data = _typed_text(self) or ""

    def _value(self) -> str:
        return str(self.data)


def blank_to_none(text: str) -> str | None:
    """Optional text: blank (or only spaces) is no text; anything else is kept as typed."""
    return text if text.strip() else None


class CheckboxField(BooleanField):
    """Ticked when the post carries the field at all (a checkbox sends its value only then)."""

    false_values = ()


def parse_whole_number(text: str) -> int:
    """A whole number 0..MAX_INT; ValueError with the message for the field otherwise."""
    text = text.strip()
    if not text:
        raise ValueError("can't be blank")
    if _NEGATIVE_NUMBER.fullmatch(text):
        raise ValueError("must be greater than or equal to 0")
    if not _WHOLE_NUMBER.fullmatch(text):
        raise ValueError("must be a whole number")
    # Checked on the digits, so a ten-thousand-digit number never reaches int().
    digits = text.lstrip("+").lstrip("0") or "0"
    if len(digits) > len(str(MAX_INT)) or int(digits) > MAX_INT:
        raise ValueError("is too large")
    return int(digits)


class WholeNumberField(Field):
    """A count typed as text (not type=number, so whatever was typed comes back on error).

    Blank is "can't be blank"; add the `Optional()` validator to make blank mean None.
    """

    def process_formdata(self, valuelist: list[Any]) -> None:
        self.data = None
        self.data = parse_whole_number(_typed_text(self) or "")

    def _value(self) -> str:
        typed = _typed_text(self)
        if typed is not None:
            return typed
        return "" if self.data is None else str(self.data)


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"number out of range: {text[:40]}")
    return number


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _json_problem(value: Any) -> str | None:
    """Why a decoded JSON value cannot be stored (nesting, NUL, surrogates), or None."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            return f"is nested too deeply (at most {MAX_JSON_DEPTH} levels)"
        if isinstance(item, str) and not is_storable(item):
            return UNSTORABLE_MESSAGE
        if isinstance(item, dict):
            pending.extend((key, depth) for key in item)
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
    return None


def parse_json_object(text: str) -> dict[str, Any]:
    """A JSON object from a textarea; blank is {}. ValueError with the field's message otherwise.

    No NaN / Infinity, numbers must be finite, at most MAX_JSON_DEPTH levels, storable text.
    """
    if not text.strip():
        return {}
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        ) from None
    except (ValueError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise ValueError(f"is not valid JSON: {reason}") from None
    if not isinstance(value, dict):
        raise ValueError('must be a JSON object, like {"temperature": 0.7}')
    problem = _json_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class JSONObjectField(Field):
    """A JSON object edited as text: shown pretty, parsed on post, kept as typed on error."""

    def process_data(self, value: Any) -> None:
        self.data = {} if value is None else value

    def process_formdata(self, valuelist: list[Any]) -> None:
        self.data = None
        self.data = parse_json_object(_typed_text(self) or "")

    def _value(self) -> str:
        typed = _typed_text(self)
        return typed if typed is not None else pretty_json(self.data)


class IdChoiceField(Field):
    """A select of rows by id. `choices` is [(id, label)]; the data is the chosen id or None.

    Blank is `blank_message`; an id that is not among the choices (text, an unknown or a
    deleted row) is `missing_message`.
    """

    def __init__(
        self,
        label: str | None = None,
        validators: Sequence[Any] | None = None,
        *,
        blank_message: str = "must be chosen",
        missing_message: str = "does not exist (it may have been deleted)",
        **kwargs: Any,
    ) -> None:
        super().__init__(label, validators, **kwargs)
        self.choices: list[tuple[int, str]] = []
        self.blank_message = blank_message
        self.missing_message = missing_message

    def process_formdata(self, valuelist: list[Any]) -> None:
        text = (_typed_text(self) or "").strip()
        self.data = int(text) if text.isascii() and text.isdigit() and len(text) <= 10 else None

    def pre_validate(self, form: Form) -> None:
        if not (_typed_text(self) or "").strip():
            raise StopValidation(self.blank_message)
        if self.data not in {value for value, _label in self.choices}:
            raise StopValidation(self.missing_message)

    def _value(self) -> str:
        typed = _typed_text(self)
        if typed is not None:
            return typed
        return "" if self.data is None else str(self.data)


class VersionField(Field):
    """The version of the row an edit form was loaded with, sent back hidden (optimistic
    locking). Blank or absent is None (no check: a client that does not send it); anything
    but a whole number is 0, a version no row has, so the save is refused as stale."""

    widget = HiddenInput()

    def process_formdata(self, valuelist: list[Any]) -> None:
        text = (_typed_text(self) or "").strip()
        if not text:
            self.data = None
            return
        try:
            self.data = parse_whole_number(text)
        except ValueError:
            self.data = 0

    def _value(self) -> str:
        return "" if self.data is None else str(self.data)


class Storable:
    """Refuses text the database could not keep (the one rule: models.validation)."""

    def __call__(self, form: Form, field: Field) -> None:
        if isinstance(field.data, str) and not is_storable(field.data):
            raise ValidationError(UNSTORABLE_MESSAGE)
