"""`flask config export` and `flask config import`: files, plans, errors, exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import delete, select

from tests.support.config_rows import configuration_rows
from tests.support.factories import make_model, make_preset, make_provider
from webapp.models import LLMProvider


def build(db: Any) -> None:
    provider = make_provider(name="OpenRouter", api_key="sk-or-secret-5678")
    make_preset(make_model(provider, key="grok"), llm_options_overrides={"temperature": 0.3})


def test_export_to_a_file_and_import_it_into_an_empty_database(
    app: Flask, db: Any, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    build(db)
    before = configuration_rows()
    target = tmp_path / "config.yaml"
    result = runner.invoke(args=["config", "export", "-o", str(target)])
    assert result.exit_code == 0, result.output
    text = target.read_text(encoding="utf-8")
    assert "${OPENROUTER_API_KEY}" in text and "sk-or-secret" not in text
    db.session.execute(delete(LLMProvider))
    db.session.commit()
    env = {"OPENROUTER_API_KEY": "sk-or-secret-5678"}
    result = runner.invoke(args=["config", "import", str(target)], env=env)
    assert result.exit_code == 0, result.output
    assert "+ provider OpenRouter" in result.output
    assert "applied: 3 to create, 0 to update, 0 to delete" in result.output
    assert configuration_rows() == before
    again = runner.invoke(args=["config", "export"])
    assert again.output == text


def test_dry_run_changes_nothing(
    app: Flask, db: Any, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    build(db)
    before = configuration_rows()
    target = tmp_path / "config.yaml"
    runner.invoke(args=["config", "export", "-o", str(target)])
    target.write_text(target.read_text().replace("name: Acme 1", "name: Grok"))
    result = runner.invoke(
        args=["config", "import", str(target), "--dry-run"],
        env={"OPENROUTER_API_KEY": "sk-other-0000"},
    )
    assert result.exit_code == 0, result.output
    assert "~ model OpenRouter/acme-1\n    name: 'Acme 1' → 'Grok'" in result.output
    assert "    api_key: changed" in result.output and "sk-other" not in result.output
    assert "dry run: 0 to create, 2 to update, 0 to delete; nothing written" in result.output
    assert configuration_rows() == before


def test_a_bad_file_fails_naming_the_path_and_writes_nothing(
    app: Flask, db: Any, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    build(db)
    before = configuration_rows()
    target = tmp_path / "config.yaml"
    runner.invoke(args=["config", "export", "-o", str(target)])
    target.write_text(
        target.read_text().replace("context_window_tokens: 0", "context_window_tokens: -5")
    )
    result = runner.invoke(
        args=["config", "import", str(target), "--keep-secrets"],
    )
    assert result.exit_code == 1
    assert "providers[0].models[0].context_window_tokens: must be greater than or equal to 0" in (
        result.output
    )
    assert "nothing was written" in result.output
    assert configuration_rows() == before


def test_a_missing_secret_variable_fails_without_keep_secrets(
    app: Flask, db: Any, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    build(db)
    target = tmp_path / "config.yaml"
    runner.invoke(args=["config", "export", "-o", str(target)])
    result = runner.invoke(args=["config", "import", str(target)], env={"OPENROUTER_API_KEY": None})
    assert result.exit_code == 1
    assert "providers[0].api_key: environment variable OPENROUTER_API_KEY is not set" in (
        result.output
    )
    kept = runner.invoke(
        args=["config", "import", str(target), "--keep-secrets"], env={"OPENROUTER_API_KEY": None}
    )
    assert kept.exit_code == 0, kept.output
    assert "applied: 0 to create, 0 to update, 0 to delete" in kept.output
    provider = db.session.scalars(select(LLMProvider)).one()
    assert provider.api_key == "sk-or-secret-5678"


def test_every_config_command_has_an_example(runner: FlaskCliRunner) -> None:
    for command in ("export", "import"):
        result = runner.invoke(args=["config", command, "--help"])
        assert result.exit_code == 0 and "Example:" in result.output
