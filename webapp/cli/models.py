"""`flask models`: list, test and probe the configured models."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from webapp.cli.output import (
    echo_json,
    fail,
    find_model,
    table,
)
from webapp.services import (
    check_model_connection,
    llm_models,
    probes,
    providers,
)


@click.group("models")
def models_group() -> None:
    """Work with configured models."""


@models_group.command("test")
@click.argument("reference")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@with_appcontext
def test_model_command(reference: str, as_json: bool) -> None:
    """Run a connection test for the model REFERENCE (a key, provider/model id, or model id).

    \b
    Example:
      flask models test mock
    """
    model = find_model(reference)
    result = check_model_connection(model)
    if as_json:
        echo_json(
            {
                "model": llm_models.reference_of(model),
                "ok": result.success,
                "latency_ms": result.value.get("latency_ms"),
                "error": "; ".join(result.errors) or None,
            }
        )
        if not result.success:
            raise SystemExit(1)
        return
    if not result.success:
        fail(result)
    click.echo(f"ok: {llm_models.reference_of(model)} answered in {result.value['latency_ms']} ms")


def _flag_word(value: bool | None) -> str:
    return {True: "yes", False: "no", None: "unknown"}[value]


@models_group.command("probe")
@click.argument("reference")
@click.option("--json", "as_json", is_flag=True, help="Print the observations as JSON.")
@click.option(
    "--apply",
    "apply_flags",
    is_flag=True,
    help="Set the model's flags to what was observed (an unknown never changes a flag).",
)
@click.option(
    "--timeout",
    "time_limit",
    type=click.FloatRange(min=0.1),
    default=probes.DEFAULT_TIME_LIMIT,
    show_default=True,
    help="Seconds each probe may take.",
)
@with_appcontext
def probe_model_command(
    reference: str, as_json: bool, apply_flags: bool, time_limit: float
) -> None:
    """Probe what the model REFERENCE can really do: five small requests at once (streaming,
    tool calling, JSON object, JSON schema, parallel tool calls), each observed as yes (it
    worked), no (the provider refused or ignored it) or unknown (timeout, 5xx, no connection).

    With --json: one object keyed by the five capability columns (true / false / null) plus
    `evidence`, a sentence per column. Changes to the flags (--apply) go to standard error.

    \b
    Example:
      flask models probe mock
      flask models probe "OpenRouter/x-ai/grok-4.1-fast" --json --apply
    """
    model = find_model(reference)
    stored = model.capabilities
    report = probes.probe_model(model, time_limit=time_limit)
    if as_json:
        echo_json(report.as_json())
    else:
        rows = [
            [
                observation.column,
                _flag_word(stored[observation.column]),
                _flag_word(observation.observed),
                observation.evidence,
            ]
            for observation in report.observations
        ]
        click.echo(table(["CAPABILITY", "STORED", "OBSERVED", "EVIDENCE"], rows))
    if not apply_flags:
        return
    changed = probes.apply_observed(model, report.observed)
    for column in changed:
        click.echo(f"applied  {column} = {_flag_word(getattr(model, column))}", err=True)
    click.echo(f"{len(changed)} flag(s) changed", err=True)


@models_group.command("list")
@click.option("--provider", "provider_name", default=None, help="Only this provider's models.")
@click.option("--enabled/--disabled", "enabled", default=None, help="Only enabled (or disabled).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@with_appcontext
def list_models_command(provider_name: str | None, enabled: bool | None, as_json: bool) -> None:
    """List the configured models.

    \b
    Example:
      flask models list --provider OpenRouter --enabled
    """
    provider_id = None
    if provider_name is not None:
        provider = providers.find_by_name(provider_name)
        if provider is None:
            raise click.ClickException(f"no provider named {provider_name!r}")
        provider_id = provider.id
    filters = llm_models.ModelFilters(provider_id=provider_id, enabled=enabled)
    rows = llm_models.list_models(filters, per_page=None).rows
    if as_json:
        echo_json(
            [
                {
                    "key": row.key,
                    "provider": row.provider_name,
                    "model": row.model,
                    "name": row.name,
                    "enabled": row.enabled,
                    "supports_streaming": row.supports_streaming,
                    "context_window_tokens": row.context_window_tokens,
                    "connection_tested_at": row.connection_tested_at,
                }
                for row in rows
            ]
        )
        return
    if not rows:
        click.echo("no models")
        return
    headers = ["KEY", "PROVIDER", "MODEL", "ENABLED", "STREAMING", "CONTEXT", "LAST TESTED"]
    click.echo(
        table(
            headers,
            [
                [
                    row.key or "-",
                    row.provider_name,
                    row.model,
                    "yes" if row.enabled else "no",
                    "yes" if row.supports_streaming else "no",
                    f"{row.context_window_tokens:,}" if row.context_window_tokens else "unlimited",
                    f"{row.connection_tested_at:%Y-%m-%d %H:%M}"
                    if row.connection_tested_at
                    else "-",
                ]
                for row in rows
            ],
        )
    )
