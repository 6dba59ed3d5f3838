"""The forms' base class and the one helper that turns model and database errors into the
form's field errors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar

from flask_wtf import FlaskForm
from sqlalchemy.exc import DataError, IntegrityError

from webapp.forms.fields import CheckboxField, IdChoiceField, VersionField
from webapp.models import ValidationError
from webapp.models.validation import Errors
from webapp.services.records import ensure_current

log = logging.getLogger(__name__)

Values = TypeVar("Values")
Saved = TypeVar("Saved")

# Model attributes that a form shows under another field's name.
FIELD_FOR_ATTRIBUTE = {"llm_provider": "llm_provider_id"}

# Unique constraints another request can win between validation and commit, by the text
# SQLite ("table.column") or PostgreSQL ("constraint name") puts in the error.
UNIQUE_CONSTRAINTS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("uq_llm_providers_name", "llm_providers.name"), "name", "has already been taken"),
    (
        ("uq_llm_models_llm_provider_id_model", "llm_models.llm_provider_id, llm_models.model"),
        "model",
        "has already been taken for this provider",
    ),
    (("uq_llm_models_key", "llm_models.key"), "key", "has already been taken"),
    (
        ("uq_llm_presets_llm_model_id_key", "llm_presets.llm_model_id, llm_presets.key"),
        "key",
        "has already been taken for this model",
    ),
    (("uq_users_email", "users.email"), "email", "has already been taken"),
)
CHANGED_MEANWHILE = "Another change got in first (the record may have been deleted); try again."
REFUSED = "The database refused these values; check them and try again."


class Form(FlaskForm):
    """A page's form. CSRF is checked once, for every request, by the app's CSRFProtect
    (htmx sends the token in a header), so the form does not check it again."""

    class Meta:
        csrf = False


@dataclass(frozen=True)
class Difference:
    """A field whose saved value differs from what a stale form submitted."""

    label: str
    current: str
    submitted: str


# Never echoed back in a conflict: the key is write-only, the rest is bookkeeping.
NOT_COMPARED = frozenset({"version", "api_key", "remove_api_key"})


class RecordForm(Form, Generic[Values]):
    """A form that edits one row: `values()` gives the service its typed input; `version`
    carries the row's version the form was loaded with (optimistic locking)."""

    version = VersionField()

    # The row's kind in messages ("provider"); set by each form.
    noun = "record"
    # What a stale save submitted where it differs from the saved row (`for_conflict`).
    conflict: list[Difference] | None = None
    # The row was deleted after the form was loaded (the conflict form creates it anew).
    deleted_meanwhile = False
    # A delete was refused because the row changed after the page was loaded.
    refused_delete = False

    def values(self) -> Values:
        raise NotImplementedError

    @property
    def expected_version(self) -> int | None:
        """The version the edit was based on (None: the post named none)."""
        return self.version.data

    def for_conflict(self, current: Any) -> Self:
        """After a stale save: the form of the row as it is now (`current`; None when it was
        deleted), remembering in `conflict` what this form submitted where it differs.

        Saving that form again is a deliberate choice made with the current values in view.
        When the row is gone, the form keeps everything submitted, to create it again.
        """
        if current is None:
            self.conflict = []
            self.deleted_meanwhile = True
            self.version.data = None
            return self
        fresh = type(self)(current, formdata=None)
        fresh.conflict = [
            Difference(str(field.label.text), shown(fresh[field.name]), shown(field))
            for field in self
            if field.name not in NOT_COMPARED and shown(fresh[field.name]) != shown(field)
        ]
        return fresh

    def valid_data(self, name: str, fallback: Any) -> Any:
        """The field's data, or `fallback` when the field has errors (its data is unusable)."""
        field = self[name]
        return fallback if field.errors else field.data

    def for_refused_delete(self) -> Self:
        """This form (of the row as it is now) with the refused delete to explain."""
        self.conflict = []
        self.refused_delete = True
        return self


class DeleteForm(Form):
    """A delete button's form: the version of the row the page showed."""

    version = VersionField()


def shown(field: Any) -> str:
    """A field's value as the page shows it (what was typed, on a posted form)."""
    if isinstance(field, CheckboxField):
        return "yes" if field.data else "no"
    if isinstance(field, IdChoiceField):
        labels = dict(field.choices)
        return labels.get(field.data, field._value()) if field.data is not None else ""
    return str(field._value())


def _integrity_errors(error: IntegrityError) -> Errors:
    text = str(error.orig)
    for markers, name, message in UNIQUE_CONSTRAINTS:
        if any(marker in text for marker in markers):
            return {name: [message]}
    log.warning("integrity error saving a form: %s", text)
    return {"": [CHANGED_MEANWHILE]}


def add_errors(
    form: FlaskForm, problem: Errors | ValidationError | IntegrityError | DataError
) -> None:
    """Put a model's `validation_errors()`, a flush's `ValidationError` or the database's
    refusal on the form: each message next to its field, unless the form already found a
    problem there; messages about fields the form does not show go above it."""
    if isinstance(problem, ValidationError):
        errors = problem.errors
    elif isinstance(problem, IntegrityError):
        errors = _integrity_errors(problem)
    elif isinstance(problem, DataError):
        log.warning("the database refused a form's values: %s", problem.orig)
        errors = {"": [REFUSED]}
    else:
        errors = problem
    for attribute, messages in errors.items():
        name = FIELD_FOR_ATTRIBUTE.get(attribute, attribute)
        if not name:
            form.form_errors.extend(messages)
        elif name in form:
            if not form[name].errors:
                form[name].errors = list(messages)
        else:
            form.form_errors.extend(f"{name.replace('_', ' ')} {m}" for m in messages)


def save_form(
    form: RecordForm[Values],
    check: Callable[[Values], Errors],
    save: Callable[[Values], Saved],
    record: Any = None,
) -> Saved | None:
    """Validate a posted form and save it through a service; None with the form's errors set.

    An invalid form still gets the model's verdict on its other fields (`check`, which
    changes nothing), so every problem shows at once. `record` (the row being edited; None
    for a new one) is checked against the form's version first: a stale form raises
    `StaleRecordError` before anything else is said about it, and so does `save` when the
    row changes between this request's read and its write.
    """
    if record is not None:
        ensure_current(record, form.expected_version)
    if not form.validate():
        add_errors(form, check(form.values()))
        return None
    try:
        return save(form.values())
    except (ValidationError, IntegrityError, DataError) as error:
        add_errors(form, error)
        return None
