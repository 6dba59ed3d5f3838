"""`flask apikeys …`: create prints the secret once (the last line), only its hash is stored,
list never shows it, revoke stops the key; bad input is an error in words (exit code 1)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from flask.testing import FlaskCliRunner

from tests.support.factories import make_model, make_provider
from webapp.extensions import db
from webapp.models import AppKey
from webapp.services import app_keys


@pytest.fixture
def keyed_models(app: Any) -> list[str]:
    provider = make_provider()
    make_model(provider, model="basic", name="Basic", key="mock-basic")
    make_model(provider, model="lite", name="Lite", key="mock-lite")
    make_model(provider, model="unkeyed", name="Unkeyed")
    return ["mock-basic", "mock-lite"]


def create(runner: FlaskCliRunner, *args: str) -> Any:
    return runner.invoke(args=["apikeys", "create", *args])


def test_create_prints_the_secret_alone_on_the_last_line_and_stores_its_hash(
    runner: FlaskCliRunner, keyed_models: list[str]
) -> None:
    result = create(
        runner, "billing-bot", "--models", "Mock-Basic", "--rpm", "60", "--tpm", "1000",
        "--expires-days", "30", "--created-by", "ops@example.com",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    *context, secret = result.output.splitlines()
    assert re.fullmatch(r"mdk-\S{40,}", secret)
    assert "shown this once" in " ".join(context) and secret not in "\n".join(context)
    stored = db.session.scalars(db.select(AppKey)).one()
    assert (stored.name, stored.model_keys, stored.rpm, stored.tpm, stored.created_by) == (
        "billing-bot", ["mock-basic"], 60, 1000, "ops@example.com"
    )  # fmt: skip
    assert stored.secret_hash == app_keys.hash_secret(secret)
    row = db.session.execute(db.select(AppKey.__table__)).one()
    assert all(secret not in str(value) for value in row)
    grant = app_keys.authenticate(secret)
    assert grant is not None and grant.allows("mock-basic") and not grant.allows("mock-lite")


def test_list_shows_scope_limits_and_status_but_never_the_secret(
    runner: FlaskCliRunner, keyed_models: list[str]
) -> None:
    scoped = create(runner, "scoped", "--models", "mock-basic,mock-lite", "--rpm", "5")
    everything = create(runner, "everything", "--tpm", "9000")
    secrets = [scoped.output.splitlines()[-1], everything.output.splitlines()[-1]]
    runner.invoke(args=["apikeys", "revoke", "everything"])

    listed = runner.invoke(args=["apikeys", "list"])
    assert listed.exit_code == 0, listed.output
    header, *lines = listed.output.splitlines()
    assert header.split() == ["NAME", "PREFIX", "SCOPE", "RPM", "TPM", "EXPIRES", "LAST", "USED",
                              "STATUS"]  # fmt: skip
    assert re.fullmatch(r"everything\s+mdk-\S{8}…\s+all models\s+-\s+9000\s+-\s+-\s+revoked",
                        lines[0])  # fmt: skip
    assert re.fullmatch(
        r"scoped\s+mdk-\S{8}…\s+mock-basic, mock-lite\s+5\s+-\s+-\s+-\s+active", lines[1]
    )
    as_json = runner.invoke(args=["apikeys", "list", "--json"])
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.output)
    assert [(r["name"], r["models"], r["rpm"], r["tpm"], r["status"]) for r in rows] == [
        ("everything", None, None, 9000, "revoked"),
        ("scoped", ["mock-basic", "mock-lite"], 5, None, "active"),
    ]
    hashes = [app_keys.hash_secret(secret) for secret in secrets]
    for output in (listed.output, as_json.output):
        assert not any(text in output for text in secrets + hashes)


def test_an_expired_key_is_listed_as_expired(
    runner: FlaskCliRunner, keyed_models: list[str]
) -> None:
    create(runner, "short-lived", "--expires-days", "1")
    key = app_keys.find_key("short-lived")
    assert key is not None and key.expires_at is not None
    key.expires_at = key.created_at
    db.session.commit()

    rows = json.loads(runner.invoke(args=["apikeys", "list", "--json"]).output)
    assert [(r["name"], r["status"]) for r in rows] == [("short-lived", "expired")]


def test_revoke_stops_the_key_is_idempotent_and_names_an_unknown_key(
    runner: FlaskCliRunner, keyed_models: list[str]
) -> None:
    secret = create(runner, "leaver").output.splitlines()[-1]
    assert app_keys.authenticate(secret) is not None

    revoked = runner.invoke(args=["apikeys", "revoke", "leaver"])
    assert revoked.exit_code == 0, revoked.output
    assert "revoked leaver" in revoked.output
    assert app_keys.authenticate(secret) is None
    again = runner.invoke(args=["apikeys", "revoke", "leaver"])
    assert again.exit_code == 0 and "already revoked" in again.output
    missing = runner.invoke(args=["apikeys", "revoke", "nobody"])
    assert missing.exit_code == 1
    assert "no app key is named 'nobody'" in missing.output


def test_unknown_model_keys_are_refused_with_the_known_ones(
    runner: FlaskCliRunner, keyed_models: list[str]
) -> None:
    result = create(runner, "typo", "--models", "mock-basic,mock-bsic,unkeyed")

    assert result.exit_code == 1
    assert "unknown keys: mock-bsic, unkeyed (known keys: mock-basic, mock-lite)" in result.output
    assert app_keys.list_keys() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rpm", "abc"], "--rpm must be a whole number: 'abc'"),
        (["--tpm", "99999999999"], "--tpm is too large"),
        (["--rpm", "-5"], "--rpm must be greater than or equal to 0"),
        (["--rpm", "0"], "rpm must be between 1 and 2147483647"),
        (["--expires-days", "0"], "expires days must be between 1 and 36500 days"),
        (["--expires-days", "99999999"], "expires days must be between 1 and 36500 days"),
        (["--models", " , "], "--models names no model key"),
    ],
)
def test_bad_numbers_and_options_are_errors_in_words(
    runner: FlaskCliRunner, keyed_models: list[str], args: list[str], message: str
) -> None:
    result = create(runner, "bad", *args)

    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "mdk-" not in result.output
    assert app_keys.list_keys() == []


def test_bad_names_are_errors_in_words(runner: FlaskCliRunner, keyed_models: list[str]) -> None:
    assert create(runner, "taken").exit_code == 0
    for name, message in (
        ("taken", "name has already been taken"),
        ("   ", "name can't be blank"),
        ("x" * 300, "name is too long (at most 100 characters)"),
    ):
        result = create(runner, name)
        assert result.exit_code == 1, result.output
        assert message in result.output
    assert [key.name for key in app_keys.list_keys()] == ["taken"]


def test_an_empty_list_says_how_to_create_a_key(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["apikeys", "list"])

    assert result.exit_code == 0
    assert "no app keys (create one with `flask apikeys create NAME`)" in result.output
    assert json.loads(runner.invoke(args=["apikeys", "list", "--json"]).output) == []
