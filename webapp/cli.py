"""`flask` commands: thin wrappers over services and seeds."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask_migrate import upgrade
from werkzeug.serving import run_simple

from seeds import seed_llm
from webapp.extensions import db
from webapp.models import LLMModel
from webapp.models.llm import DEFAULT_PRESET_KEY
from webapp.services import Result, check_model_connection, llm_models
from webapp.services.chat import chat_events
from webapp.services.keys import KeyRotationError, rotate_encryption_key
from webapp.services.users import change_password, create_user, find_user


@click.command("seed")
@with_appcontext
def seed_command() -> None:
    """Create the seed providers, models and presets that are missing (never overwrites)."""
    report = seed_llm(db.session, current_app.config)
    for label in report.created:
        click.echo(f"created  {label}")
    for label in report.existing:
        click.echo(f"exists   {label} (left alone)")
    for label in report.skipped:
        click.echo(f"skipped  {label}")
    click.echo(f"{len(report.created)} created, {len(report.existing)} left alone")


@click.group("keys")
def keys_group() -> None:
    """Manage the encryption of stored provider API keys."""


@keys_group.command("rotate")
@click.option(
    "--old-key",
    envvar="MODELDESK_OLD_ENCRYPTION_KEY",
    required=True,
    help="The key the API keys are encrypted with now.",
)
@click.option(
    "--new-key",
    default=None,
    help="The key to encrypt them with (default: the configured encryption key).",
)
@with_appcontext
def rotate_command(old_key: str, new_key: str | None) -> None:
    """Re-encrypt every stored API key from OLD to NEW in one transaction.

    Typical use: set MODELDESK_ENCRYPTION_KEY to the new key, pass the old one here.
    """
    new_key = new_key or current_app.config["MODELDESK_ENCRYPTION_KEY"]
    try:
        count = rotate_encryption_key(db.session, old_key, new_key)
    except KeyRotationError as exc:
        raise click.ClickException(f"{exc}; nothing was changed") from exc
    click.echo(f"re-encrypted {count} API key(s)")


@click.command("up")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def up_command(host: str, port: int) -> None:
    """Development: apply migrations, load seeds, serve on HOST:PORT (threaded)."""
    upgrade()
    report = seed_llm(db.session, current_app.config)
    click.echo(f"seeds: {len(report.created)} created, {len(report.existing)} already there")
    click.echo(f"ModelDesk on http://{host}:{port}/")
    # Threaded: the chat streams while the same process answers the mock provider.
    run_simple(host, port, current_app._get_current_object(), threaded=True)


def _model_by_key(key: str) -> LLMModel:
    model = llm_models.find_by_key(key)
    if model is None:
        raise click.ClickException(f"no model with key {key!r} (see the models page)")
    return model


def _fail(result: Result) -> None:
    raise click.ClickException(f"{result.code}: {'; '.join(result.errors)}")


def _print_stats(value: dict[str, object]) -> None:
    usage = value.get("usage") or {}
    timings = value.get("timings") or {}
    preset = value.get("preset")
    click.echo(
        f"[preset: {preset.name if preset else '(none)'} | usage: {usage} | "
        f"finish: {value.get('finish_reason')} | timings (ms): {timings}]",
        err=True,
    )


@click.command("chat")
@click.option("--model", "model_key", required=True, help="The model's key.")
@click.option(
    "--preset",
    "preset_key",
    default=None,
    help=f"A preset key (default: the model's '{DEFAULT_PRESET_KEY}' preset, if any).",
)
@click.option("--system", default=None, help="A system prompt.")
@click.argument("message")
@with_appcontext
def chat_command(model_key: str, preset_key: str | None, system: str | None, message: str) -> None:
    """Send MESSAGE to a model and print the reply (streamed when the model streams)."""
    model = _model_by_key(model_key)
    for event in chat_events(model, user_text=message, system=system, preset_key=preset_key):
        if event.type == "delta":
            click.echo(event.content, nl=False)
        elif event.type == "error":
            click.echo()
            _fail(event.result)
        else:
            click.echo()
            _print_stats(event.result.value)


@click.group("models")
def models_group() -> None:
    """Work with configured models."""


@models_group.command("test")
@click.argument("key")
@with_appcontext
def test_model_command(key: str) -> None:
    """Run a connection test for the model with KEY."""
    result = check_model_connection(_model_by_key(key))
    if not result.success:
        _fail(result)
    click.echo(f"ok: {key} answered in {result.value['latency_ms']} ms")


@click.group("users")
def users_group() -> None:
    """Manage who can sign in."""


@users_group.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="Make the user an admin (default: member).")
@click.password_option(help="Prompted for when not given.")
@with_appcontext
def create_user_command(email: str, admin: bool, password: str) -> None:
    """Create a user who signs in with EMAIL."""
    user, errors = create_user(email, password, role="admin" if admin else "member")
    if user is None:
        raise click.ClickException(
            "; ".join(f"{field} {', '.join(messages)}" for field, messages in errors.items())
        )
    click.echo(f"created {user.role} {user.email}")


@users_group.command("set-password")
@click.argument("email")
@click.password_option(help="Prompted for when not given.")
@with_appcontext
def set_password_command(email: str, password: str) -> None:
    """Give EMAIL a new password; signs that user out everywhere."""
    user = find_user(email)
    if user is None:
        raise click.ClickException(f"no user has the email {email.strip().lower()}")
    errors = change_password(user, password)
    if errors:
        raise click.ClickException(
            "; ".join(f"{field} {', '.join(messages)}" for field, messages in errors.items())
        )
    click.echo(f"new password set for {user.email}; their sessions are ended")


def register(app: Flask) -> None:
    commands = (seed_command, keys_group, up_command, chat_command, models_group, users_group)
    for command in commands:
        app.cli.add_command(command)
