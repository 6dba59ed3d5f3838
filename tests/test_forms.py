"""The forms' building blocks: the JSON-object and whole-number fields, the helper that puts
model and database errors on a form, the id URL converter, and the preset order."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from wtforms.validators import Optional

from tests.support.factories import make_model, make_preset, make_provider
from webapp.forms import ProviderForm, RenameForm, add_errors
from webapp.forms.base import Form
from webapp.forms.fields import JSONObjectField, WholeNumberField, parse_json_object
from webapp.models import LLMProvider, ValidationError
from webapp.models.validation import MAX_INT, UNSTORABLE_MESSAGE, is_storable
from webapp.routing import whole_numbers_up_to
from webapp.services.presets import default_preset_of, presets_of, suggested_key


class SampleForm(Form):
    options = JSONObjectField("Options")
    count = WholeNumberField("Count")
    limit = WholeNumberField("Limit", [Optional()])


def posted(app: Flask, form_class: type[Form], data: dict[str, str], **kwargs: Any) -> Any:
    """A form built from a POST with `data`, validated."""
    with app.test_request_context(method="POST", data=data):
        form = form_class(**kwargs)
        form.validate()
        return form


# --- JSON object field ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("  \n", {}),
        ('{"temperature": 0.5}', {"temperature": 0.5}),
        ('{"stop": ["a", "b"], "n": {"deep": null}}', {"stop": ["a", "b"], "n": {"deep": None}}),
    ],
)
def test_json_field_parses_an_object(app: Flask, text: str, expected: dict[str, Any]) -> None:
    form = posted(app, SampleForm, {"options": text, "count": "1"})
    assert form.options.errors == []
    assert form.options.data == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "must be a JSON object"),
        ('"text"', "must be a JSON object"),
        ("null", "must be a JSON object"),
        ('{"a": NaN}', "is not valid JSON: NaN is not allowed"),
        ('{"a": Infinity}', "is not valid JSON: Infinity is not allowed"),
        ('{"a": -Infinity}', "is not valid JSON: -Infinity is not allowed"),
        ('{"a": 1e400}', "is not valid JSON: number out of range"),
        ('{"a": 1,}', "is not valid JSON: Expecting property name"),
        ('{"a": "x\\u0000y"}', UNSTORABLE_MESSAGE),
        ('{"\\ud800": 1}', UNSTORABLE_MESSAGE),
        ('{"a":' * 33 + "1" + "}" * 33, "is nested too deeply (at most 32 levels)"),
        ("[" * 50_000 + "]" * 50_000, "is not valid JSON"),
    ],
)
def test_json_field_errors_sit_on_the_field_and_keep_the_text(
    app: Flask, text: str, message: str
) -> None:
    form = posted(app, SampleForm, {"options": text, "count": "1"})
    assert len(form.options.errors) == 1
    assert form.options.errors[0].startswith(message)
    assert form.options._value() == text
    assert form.count.errors == []


def test_json_field_allows_thirty_two_levels_of_values() -> None:
    # 31 nested objects and the number inside the last one: 32 levels.
    assert parse_json_object('{"a":' * 31 + "1" + "}" * 31)
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_json_object('{"a":' * 32 + "1" + "}" * 32)


def test_json_field_shows_stored_data_pretty(app: Flask) -> None:
    with app.test_request_context():
        form = SampleForm(data={"options": {"temperature": 0.2, "stop": ["é"]}})
        assert form.options._value() == '{\n  "temperature": 0.2,\n  "stop": [\n    "é"\n  ]\n}'
        assert SampleForm()._fields["options"]._value() == "{}"


# --- whole-number field ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), (" 42 ", 42), ("+7", 7), ("007", 7), (str(MAX_INT), MAX_INT)],
)
def test_whole_number_field_parses(app: Flask, text: str, expected: int) -> None:
    form = posted(app, SampleForm, {"count": text})
    assert (form.count.errors, form.count.data) == ([], expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "can't be blank"),
        ("   ", "can't be blank"),
        ("-3", "must be greater than or equal to 0"),
        ("1.5", "must be a whole number"),
        ("twelve", "must be a whole number"),
        ("٣", "must be a whole number"),
        (str(MAX_INT + 1), "is too large"),
        ("9" * 10_000, "is too large"),
    ],
)
def test_whole_number_field_keeps_what_was_typed(app: Flask, text: str, message: str) -> None:
    form = posted(app, SampleForm, {"count": text})
    assert form.count.errors == [message]
    assert form.count.data is None
    assert form.count._value() == text


def test_optional_whole_number_is_none_when_blank(app: Flask) -> None:
    form = posted(app, SampleForm, {"count": "1", "limit": " "})
    assert form.limit.errors == [] and form.limit.data is None
    form = posted(app, SampleForm, {"count": "1", "limit": "-1"})
    assert form.limit.errors == ["must be greater than or equal to 0"]


def test_a_field_left_out_of_a_post_is_blank_not_the_stored_value(app: Flask) -> None:
    provider = make_provider(name="Stored")
    form = posted(app, ProviderForm, {"base_url": "https://x.example"}, provider=provider)
    assert form.name.data == ""
    assert form.message_overhead_tokens.errors == ["can't be blank"]


# --- one rule for unstorable text -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "storable"), [("plain", True), ("☃ ok", True), ("a\x00b", False), ("\ud800", False)]
)
def test_is_storable(text: str, storable: bool) -> None:
    assert is_storable(text) is storable


def test_sign_in_with_unstorable_text_is_a_wrong_sign_in(
    app: Flask, client: FlaskClient, admin: Any
) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    response = client.post("/login", data={"email": "admin\x00@example.com", "password": "x"})
    assert response.status_code == 401
    assert "Wrong email or password" in response.get_data(as_text=True)


def test_text_fields_refuse_unstorable_text(app: Flask) -> None:
    form = posted(app, RenameForm, {"title": "a\x00b"})
    assert form.title.errors == [UNSTORABLE_MESSAGE]


@pytest.mark.parametrize(
    ("typed", "title", "errors"),
    [
        ("  A   new\ttitle ", "A new title", []),
        ("   ", "", ["can't be blank"]),
        ("x" * 201, "x" * 201, ["is too long (at most 200 characters)"]),
    ],
)
def test_rename_form(app: Flask, typed: str, title: str, errors: list[str]) -> None:
    form = posted(app, RenameForm, {"title": typed})
    assert (form.title.data, form.title.errors) == (title, errors)


# --- putting model and database errors on a form --------------------------------------------


def test_model_errors_go_next_to_their_fields(app: Flask) -> None:
    form = posted(app, SampleForm, {"options": "{", "count": "1"})
    add_errors(
        form,
        {
            "options": ["contains reserved keys: model"],
            "count": ["is too large"],
            "secret_column": ["is wrong"],
            "": ["Try again."],
        },
    )
    # The form's own finding wins on its field; the model's goes where the form had none.
    assert form.options.errors[0].startswith("is not valid JSON")
    assert len(form.options.errors) == 1
    assert form.count.errors == ["is too large"]
    # Fields the form does not show are named above it.
    assert form.form_errors == ["secret column is wrong", "Try again."]


def test_a_flush_validation_error_lands_on_the_fields(app: Flask) -> None:
    form = posted(app, SampleForm, {"count": "1"})
    add_errors(form, ValidationError({"count": ["must be a whole number"]}))
    assert form.count.errors == ["must be a whole number"]


def test_a_unique_constraint_lost_to_another_request_is_a_field_error(app: Flask, db: Any) -> None:
    make_provider(name="Taken")
    with pytest.raises(IntegrityError) as raised:
        db.session.execute(
            insert(LLMProvider).values(
                name="Taken", api_format="openai", base_url="https://x.example", api_prefix=""
            )
        )
    db.session.rollback()
    form = posted(app, ProviderForm, {"name": "Taken"})
    form.name.errors = []
    add_errors(form, raised.value)
    assert form.name.errors == ["has already been taken"]


def test_an_unknown_integrity_error_is_shown_above_the_form(app: Flask) -> None:
    form = posted(app, SampleForm, {"count": "1"})
    add_errors(form, IntegrityError("INSERT …", {}, Exception("FOREIGN KEY constraint failed")))
    assert form.form_errors and "try again" in form.form_errors[0]
    assert form.count.errors == []


# --- the id URL converter -------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 7, 9, 10, 19, 100, 2024, 65_535, MAX_INT])
def test_id_pattern_matches_exactly_one_to_the_limit(limit: int) -> None:
    pattern = re.compile(whole_numbers_up_to(limit))
    samples = {0, 1, 2, 9, 10, 11, 99, 100, 101, limit - 1, limit, limit + 1, limit * 10}
    for number in samples:
        assert bool(pattern.fullmatch(str(number))) == (1 <= number <= limit), number
    for text in ("", "01", "+1", "-1", "1.0", "\u0661"):
        assert not pattern.fullmatch(text), text


def test_ids_out_of_range_are_404_for_every_method(
    app: Flask, admin_client: FlaskClient, db: Any
) -> None:
    provider = make_provider()
    model = make_model(provider)
    assert admin_client.get(f"/providers/{provider.id}/edit").status_code == 200
    for bad in ("0", "00", "-1", str(MAX_INT + 1), "9" * 30, "1e3", "abc"):
        for method, path in [
            ("GET", f"/providers/{bad}/edit"),
            ("GET", f"/providers/{bad}/import"),
            ("POST", f"/providers/{bad}/import"),
            ("POST", f"/models/{bad}"),
            ("GET", f"/models/{bad}/presets/"),
            ("POST", f"/models/{model.id}/presets/{bad}/delete"),
        ]:
            response = admin_client.open(path, method=method)
            assert response.status_code == 404, (method, path, response.status_code)
    # The largest id is a valid URL: just no such row.
    assert admin_client.get(f"/providers/{MAX_INT}/edit").status_code == 404


def test_id_converter_builds_urls(app: Flask) -> None:
    with app.test_request_context():
        from flask import url_for

        assert url_for("providers.edit", provider_id=42) == "/providers/42/edit"
        assert url_for("presets.index", model_id=7) == "/models/7/presets/"


# --- presets order and the default preset ---------------------------------------------------


def test_presets_of_lists_the_default_first_then_by_name(app: Flask, db: Any) -> None:
    model = make_model(make_provider())
    other = make_model(model.llm_provider, model="other")
    make_preset(other, name="Elsewhere", key="x")
    make_preset(model, name="zesty", key="z")
    default = make_preset(model, name="Plain", key="default")
    make_preset(model, name="Alpha", key=None)
    make_preset(model, name="beta", key=None)
    assert [p.name for p in presets_of(model.id)] == ["Plain", "Alpha", "beta", "zesty"]
    assert default_preset_of(model.id) == default
    assert default_preset_of(other.id) is None
    assert presets_of(None) == []


def test_a_models_first_preset_is_suggested_as_its_default(app: Flask, db: Any) -> None:
    model = make_model(make_provider())
    assert suggested_key(model.id) == "default"
    make_preset(model, name="Creative", key="creative")
    assert suggested_key(model.id) is None
