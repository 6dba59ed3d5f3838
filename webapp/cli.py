"""`flask` commands: thin wrappers over services and seeds."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask_migrate import upgrade

from seeds import seed_llm
from webapp.extensions import db
from webapp.services.keys import KeyRotationError, rotate_encryption_key


@click.command("seed")
@with_appcontext
def seed_command() -> None:
    """Create the seed providers, models and presets that are missing (never overwrites)."""
    report = seed_llm(db.session, current_app.config)
    for label in report.created:
        click.echo(f"created  {label}")
    for label in report.existing:
        click.echo(f"exists   {label} (left alone)")
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
    current_app.run(host=host, port=port, threaded=True, use_reloader=False)


def register(app: Flask) -> None:
    for command in (seed_command, keys_group, up_command):
        app.cli.add_command(command)
