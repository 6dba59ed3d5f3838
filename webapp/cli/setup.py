"""Setting up: seed data, the development server, and the encryption key of stored secrets."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext
from flask_migrate import upgrade
from werkzeug.serving import run_simple

from seeds import seed_llm
from webapp.extensions import db
from webapp.models import acting_as
from webapp.services.keys import KeyRotationError, rotate_encryption_key


@click.command("seed")
@with_appcontext
def seed_command() -> None:
    """Create the seed providers, models and presets that are missing (never overwrites).

    \b
    Example:
      flask seed
    """
    with acting_as("flask seed"):
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
    """Manage the encryption of stored provider secrets (API keys, header values)."""


@keys_group.command("rotate")
@click.option(
    "--old-key",
    envvar="MODELDESK_OLD_ENCRYPTION_KEY",
    required=True,
    help="The key the API keys and header values are encrypted with now.",
)
@click.option(
    "--new-key",
    default=None,
    help="The key to encrypt them with (default: the configured encryption key).",
)
@with_appcontext
def rotate_command(old_key: str, new_key: str | None) -> None:
    """Re-encrypt every stored API key and header value from OLD to NEW in one transaction.

    Typical use: set MODELDESK_ENCRYPTION_KEY to the new key, pass the old one here.

    \b
    Example:
      MODELDESK_OLD_ENCRYPTION_KEY=<old> flask keys rotate
      flask keys rotate --old-key <old> --new-key <new>
    """
    new_key = new_key or current_app.config["MODELDESK_ENCRYPTION_KEY"]
    try:
        rotated = rotate_encryption_key(db.session, old_key, new_key)
    except KeyRotationError as exc:
        raise click.ClickException(f"{exc}; nothing was changed") from exc
    click.echo(
        f"re-encrypted {rotated.api_keys} API key(s) and {rotated.header_values} header value(s)"
    )
    if new_key == current_app.config["MODELDESK_ENCRYPTION_KEY"]:
        click.echo("The configured MODELDESK_ENCRYPTION_KEY is the new key: restart the app.")
    else:
        click.echo("Now set this in the app's environment and restart it, so it can read them:")
        click.echo(f"MODELDESK_ENCRYPTION_KEY={new_key}")


@click.command("up")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def up_command(host: str, port: int) -> None:
    """Development: apply migrations, load seeds, serve on HOST:PORT (threaded).

    \b
    Example:
      flask --app wsgi up --port 5000
    """
    upgrade()
    with acting_as("flask up"):
        report = seed_llm(db.session, current_app.config)
    click.echo(f"seeds: {len(report.created)} created, {len(report.existing)} already there")
    click.echo(f"ModelDesk on http://{host}:{port}/")
    # Threaded: the chat streams while the same process answers the mock provider.
    run_simple(host, port, current_app._get_current_object(), threaded=True)
