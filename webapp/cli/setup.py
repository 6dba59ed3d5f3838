"""Setting up: seed data, the development server, and the encryption key of stored secrets."""

from __future__ import annotations

import os

import click
from flask import current_app
from flask.cli import with_appcontext
from flask_migrate import upgrade
from werkzeug.serving import run_simple

from seeds import MOCK_PROVIDER_NAME, mock_base_url, seed_llm
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

    The mock provider answers from this same process: unless MOCK_LLM_BASE_URL is set, a
    first run seeds it at the address served.

    \b
    Example:
      flask --app wsgi up --port 5000
    """
    upgrade()
    config = current_app.config
    served = _address_served(host, port)
    if not os.environ.get("MOCK_LLM_BASE_URL", "").strip():
        config["MOCK_LLM_BASE_URL"] = served
    with acting_as("flask up"):
        report = seed_llm(db.session, config)
    click.echo(f"seeds: {len(report.created)} created, {len(report.existing)} already there")
    mock = mock_base_url(db.session)
    expected = config["MOCK_LLM_BASE_URL"]
    if mock is not None and mock.rstrip("/") != expected.rstrip("/"):
        # Seeds never overwrite: a database first served elsewhere keeps that address.
        click.echo(
            f"note: the {MOCK_PROVIDER_NAME} provider points at {mock}, not {expected}: "
            "edit its base URL on the Providers page, or serve on that port"
        )
    click.echo(f"ModelDesk on {served}/")
    # Threaded: the chat streams while the same process answers the mock provider.
    run_simple(host, port, current_app._get_current_object(), threaded=True)


def _address_served(host: str, port: int) -> str:
    """The URL this machine reaches a server bound to HOST:PORT at (a wildcard bind is
    reached on loopback; an IPv6 address goes in brackets)."""
    reached = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{reached}]:{port}" if ":" in reached else f"http://{reached}:{port}"
