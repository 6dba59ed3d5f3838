"""`flask providers`: list the configured providers."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from webapp.cli.output import (
    echo_json,
    table,
)
from webapp.services import (
    providers,
)


@click.group("providers")
def providers_group() -> None:
    """Work with configured providers."""


@providers_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@with_appcontext
def list_providers_command(as_json: bool) -> None:
    """List the providers with their endpoint, API key state and model counts.

    \b
    Example:
      flask providers list --json
    """
    rows = providers.list_providers()
    key_states = {"set": "set", "none": "not set", "unreadable": "unreadable"}
    if as_json:
        echo_json(
            [
                {
                    "name": row.provider.name,
                    "endpoint": row.provider.endpoint,
                    "api_key": row.provider.api_key_status,
                    "models": row.model_count,
                    "enabled_models": row.enabled_count,
                }
                for row in rows
            ]
        )
        return
    if not rows:
        click.echo("no providers")
        return
    click.echo(
        table(
            ["NAME", "ENDPOINT", "API KEY", "MODELS (ENABLED)"],
            [
                [
                    row.provider.name,
                    row.provider.endpoint,
                    key_states.get(row.provider.api_key_status, row.provider.api_key_status),
                    f"{row.model_count} ({row.enabled_count})",
                ]
                for row in rows
            ],
        )
    )
