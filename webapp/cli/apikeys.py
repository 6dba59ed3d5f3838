"""`flask apikeys`: the keys other apps use for the gateway (`/v1`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click
from flask.cli import with_appcontext

from webapp.cli.output import echo_json, errors_text, table, when
from webapp.forms.fields import parse_whole_number
from webapp.models import AppKey
from webapp.services import app_keys

ALL_MODELS = "all models"
NO_LIMIT = "-"


@click.group("apikeys")
def apikeys_group() -> None:
    """Manage the keys other apps use to call the gateway (/v1)."""


def _number(option: str, text: str | None) -> int | None:
    """An option's whole number; a ClickException (exit code 1) that says what is wrong."""
    if text is None:
        return None
    try:
        return parse_whole_number(text)
    except ValueError as error:
        raise click.ClickException(f"{option} {error}: {text!r}") from None


def _model_keys(text: str | None) -> list[str] | None:
    """`--models a,b` as a list; None (every model) when not given or only commas."""
    if text is None:
        return None
    keys = [part.strip().lower() for part in text.split(",") if part.strip()]
    if not keys:
        raise click.ClickException("--models names no model key; leave it out for all models")
    return keys


def _shown_prefix(key: AppKey) -> str:
    return f"{key.prefix}…"


def _scope(key: AppKey) -> str:
    return ", ".join(key.model_keys) if key.model_keys else ALL_MODELS


def _limit(value: int | None) -> str:
    return NO_LIMIT if value is None else str(value)


@apikeys_group.command("create")
@click.argument("name")
@click.option(
    "--models", metavar="K1,K2", help="Comma-separated model keys the app may use (default: all)."
)
@click.option(
    "--expires-days", metavar="N", help="Stop working after this many days (default: never)."
)
@click.option("--rpm", metavar="N", help="Requests per minute allowed (default: no limit).")
@click.option("--tpm", metavar="N", help="Tokens per minute allowed (default: no limit).")
@click.option(
    "--created-by", metavar="WHO", help="Who asked for the key (an email, a team), kept with it."
)
@with_appcontext
def create_command(
    name: str,
    models: str | None,
    expires_days: str | None,
    rpm: str | None,
    tpm: str | None,
    created_by: str | None,
) -> None:
    """Create an app key called NAME and print its secret, once, on the last line.

    Only a hash of the secret is kept: copy it from the output, nothing can show it again.

    \b
    Example:
      flask apikeys create billing-bot --models gpt-4o,mock --rpm 60 --tpm 100000
    """
    model_keys = _model_keys(models)
    numbers = {
        "expires_days": _number("--expires-days", expires_days),
        "rpm": _number("--rpm", rpm),
        "tpm": _number("--tpm", tpm),
    }
    scope_errors = app_keys.scope_errors(model_keys or [])
    if scope_errors:
        raise click.ClickException(errors_text(scope_errors))
    created = app_keys.create_key(name, model_keys=model_keys, created_by=created_by, **numbers)
    if created.key is None or created.secret is None:
        raise click.ClickException(errors_text(created.errors))
    key = created.key
    rpm_limit = "unlimited" if key.rpm is None else key.rpm
    tpm_limit = "unlimited" if key.tpm is None else key.tpm
    expires = when(key.expires_at) if key.expires_at else "never"
    click.echo(
        f"created app key {key.name} ({_shown_prefix(key)}) for {_scope(key)}; "
        f"rpm {rpm_limit}, tpm {tpm_limit}, expires {expires}"
    )
    click.echo("Its secret is shown this once (only a hash is kept): store it now.")
    click.echo(created.secret)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _json_row(key: AppKey, status: str) -> dict[str, Any]:
    return {
        "name": key.name,
        "prefix": key.prefix,
        "models": key.model_keys,
        "rpm": key.rpm,
        "tpm": key.tpm,
        "expires_at": _iso(key.expires_at),
        "last_used_at": _iso(key.last_used_at),
        "revoked_at": _iso(key.revoked_at),
        "created_at": _iso(key.created_at),
        "created_by": key.created_by,
        "status": status,
    }


@apikeys_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@with_appcontext
def list_command(as_json: bool) -> None:
    """List the app keys: name, prefix, scope, limits, expiry, last use, status.

    Never the secret: it was shown once, when the key was created.

    \b
    Example:
      flask apikeys list --json
    """
    keys = app_keys.list_keys_with_status()
    if as_json:
        echo_json([_json_row(key, status) for key, status in keys])
        return
    if not keys:
        click.echo("no app keys (create one with `flask apikeys create NAME`)")
        return
    click.echo(
        table(
            ["NAME", "PREFIX", "SCOPE", "RPM", "TPM", "EXPIRES", "LAST USED", "STATUS"],
            [
                [
                    key.name,
                    _shown_prefix(key),
                    _scope(key),
                    _limit(key.rpm),
                    _limit(key.tpm),
                    when(key.expires_at),
                    when(key.last_used_at),
                    status,
                ]
                for key, status in keys
            ],
        )
    )


@apikeys_group.command("revoke")
@click.argument("name")
@with_appcontext
def revoke_command(name: str) -> None:
    """Revoke the app key called NAME: it stops working at once (revoking twice is harmless).

    \b
    Example:
      flask apikeys revoke billing-bot
    """
    key = app_keys.find_key(name)
    if key is None:
        raise click.ClickException(
            f"no app key is named {name.strip()!r} (see `flask apikeys list`)"
        )
    if key.revoked_at is not None:
        click.echo(f"{key.name} was already revoked ({when(key.revoked_at)})")
        return
    app_keys.revoke_key(key)
    click.echo(f"revoked {key.name} ({_shown_prefix(key)}): it stops working at once")
