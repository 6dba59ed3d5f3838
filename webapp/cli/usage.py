"""`flask usage`: what the gateway and the chat served, per key (or user) and model."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from webapp.cli.output import echo_json, table
from webapp.services import usage, usage_reports

SUMMARY_HEADERS = ["KEY", "MODEL", "REQUESTS", "ERRORS", "PROMPT_TOKENS", "COMPLETION_TOKENS"]


@click.group("usage")
def usage_group() -> None:
    """Usage of the gateway and the chat."""


@usage_group.command("summary")
@click.option(
    "--since",
    "since_days",
    type=click.FloatRange(min=0),
    default=None,
    help="Only the requests of the last DAYS days (default: all).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@with_appcontext
def usage_summary_command(since_days: float | None, as_json: bool) -> None:
    """Requests, errors and tokens per key and model, the busiest first.

    A gateway key shows as "key #<id>", a chat user as their email. Events still waiting to
    be written are written first.

    \b
    Example:
      flask usage summary --since 7
      flask usage summary --json
    """
    usage.flush()
    rows = usage_reports.summary(usage_reports.UsageFilters.last_days(since_days))
    if as_json:
        echo_json([row.as_json() for row in rows])
        return
    if not rows:
        click.echo("no usage recorded")
        return
    click.echo(
        table(
            SUMMARY_HEADERS,
            [
                [
                    row.key,
                    row.model,
                    str(row.requests),
                    str(row.errors),
                    str(row.prompt_tokens),
                    str(row.completion_tokens),
                ]
                for row in rows
            ],
        )
    )
