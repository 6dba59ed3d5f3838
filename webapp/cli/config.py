"""`flask config`: configuration as code and the history of every change."""

from __future__ import annotations

from typing import Any

import click
from flask.cli import with_appcontext

from webapp.cli.output import (
    echo_json,
    when,
)
from webapp.extensions import db
from webapp.services import (
    config_io,
    history,
)


@click.group("config")
def config_group() -> None:
    """Configuration as code: export and import providers, models and presets as YAML."""


@config_group.command("export")
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write to FILE instead of standard output.",
)
@with_appcontext
def export_config_command(output: str | None) -> None:
    """Write every provider, model and preset as YAML (no users, no transcripts).

    The order is stable, so two exports of the same configuration are byte-identical and
    a diff shows what changed. No secret is written: each API key and header value becomes
    an environment reference named after the provider (${OPENROUTER_API_KEY},
    ${OPENROUTER_HEADER_X_TITLE}) that `flask config import` resolves.

    \b
    Example:
      flask config export -o modeldesk.yaml
      flask config export | less
    """
    text = config_io.export_yaml(db.session)
    if output is None:
        click.echo(text, nl=False)
        return
    with open(output, "w", encoding="utf-8") as handle:
        handle.write(text)
    click.echo(f"wrote {output}", err=True)


@config_group.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.option("--prune", is_flag=True, help="Delete the rows that are not in the file.")
@click.option(
    "--keep-secrets",
    is_flag=True,
    help="Keep a stored API key or header value when its environment variable is not set.",
)
@with_appcontext
def import_config_command(file: Any, dry_run: bool, prune: bool, keep_secrets: bool) -> None:
    """Create or update providers, models and presets from a YAML FILE (`flask config export`).

    Rows are matched by natural keys: provider name; provider + model id; model + preset key
    (a preset without a key by its name). The plan is printed first: `+` create, `~` update
    (old → new per field; secrets only as "changed"), `-` delete (only with --prune). The
    import is one transaction: any error, named by its path in the file
    (providers[2].models[0].key), writes nothing. ${VAR} references are read from the
    environment; a missing one is an error unless --keep-secrets keeps the stored value.

    \b
    Example:
      flask config import modeldesk.yaml --dry-run
      OPENROUTER_API_KEY=sk-... flask config import modeldesk.yaml --prune
    """
    try:
        plan = config_io.import_yaml(
            db.session, file.read(), dry_run=dry_run, prune=prune, keep_secrets=keep_secrets
        )
    except config_io.ConfigFileError as error:
        for path, message in error.problems:
            click.echo(f"error  {path}: {message}", err=True)
        raise click.ClickException(
            f"{len(error.problems)} problem(s) in {file.name}; nothing was written"
        ) from error
    for line in plan.lines():
        click.echo(line)
    if plan.kept:
        click.echo(f"({len(plan.kept)} row(s) not in the file left alone; --prune deletes them)")
    counts = plan.counts()
    summary = f"{counts['+']} to create, {counts['~']} to update, {counts['-']} to delete"
    click.echo(f"dry run: {summary}; nothing written" if dry_run else f"applied: {summary}")


@config_group.command("history")
@click.option(
    "--since",
    "since_days",
    type=click.FloatRange(min=0),
    default=None,
    help="Only the changes of the last DAYS days.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of text.")
@with_appcontext
def config_history_command(since_days: float | None, as_json: bool) -> None:
    """Show who changed which provider, model or preset, when, and how (newest first).

    Every create, update and delete is recorded — from the pages, the CLI, seeds and
    imports — with the user's email or the command's name and the field-level
    before → after; secrets show only as "changed".

    \b
    Example:
      flask config history --since 7
      flask config history --json
    """
    changes = history.list_changes(history.HistoryFilters(since_days=since_days), limit=None)
    if as_json:
        echo_json([history.as_json(change) for change in changes])
        return
    if not changes:
        click.echo("no changes")
        return
    for change in changes:
        click.echo(
            f"{when(change.changed_at)}  {change.actor}  {change.action} "
            f"{change.entity_type} {change.entity_label}"
        )
        if change.action == "update":
            for line in history.describe(change.changes):
                click.echo(f"    {line}")
