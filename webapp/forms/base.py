"""The forms' base class and the one helper that turns model and database errors into the
form's field errors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from flask_wtf import FlaskForm
from sqlalchemy.exc import DataError, IntegrityError

from webapp.models import ValidationError
from webapp.models.validation import Errors

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


class RecordForm(Form, Generic[Values]):
    """A form that edits one row: `values()` gives the service its typed input."""

    def values(self) -> Values:
        raise NotImplementedError

    def valid_data(self, name: str, fallback: Any) -> Any:
        """The field's data, or `fallback` when the field has errors (its data is unusable)."""
        field = self[name]
        return fallback if field.errors else field.data


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
) -> Saved | None:
    """Validate a posted form and save it through a service; None with the form's errors set.

    An invalid form still gets the model's verdict on its other fields (`check`, which
    changes nothing), so every problem shows at once.
    """
    if not form.validate():
        add_errors(form, check(form.values()))
        return None
    try:
        return save(form.values())
    except (ValidationError, IntegrityError, DataError) as error:
        add_errors(form, error)
        return None
