"""`flask` commands: thin wrappers over services and seeds."""

from __future__ import annotations

import json
import unicodedata
from datetime import datetime
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask_migrate import upgrade
from werkzeug.serving import run_simple

from seeds import seed_llm
from webapp.extensions import db
from webapp.models import LLMModel, acting_as
from webapp.models.llm import DEFAULT_PRESET_KEY
from webapp.services import (
    Result,
    check_model_connection,
    config_io,
    history,
    llm_models,
    probes,
    providers,
)
from webapp.services import users as user_service
from webapp.services.chat import chat_events, preview_request
from webapp.services.keys import KeyRotationError, rotate_encryption_key
from webapp.services.users import change_password, create_user, find_user


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


MODEL_REFERENCE_HELP = (
    "A model: its key, '<provider name>/<model id>', or a model id only one provider has."
)


def _find_model(reference: str) -> LLMModel:
    found = llm_models.resolve_model(reference)
    if found.model is not None:
        return found.model
    if found.candidates:
        options = "\n  ".join(found.candidates)
        raise click.ClickException(
            f"no single model matches {reference!r}; did you mean:\n  {options}"
        )
    raise click.ClickException(f"no model matches {reference!r} (see `flask models list`)")


def _fail(result: Result) -> None:
    raise click.ClickException(f"{result.code}: {'; '.join(result.errors)}")


def _stats_line(value: dict[str, Any]) -> str:
    """`preset Default · 12 prompt + 30 completion tokens · finish stop · first token 85 ms`."""
    preset = value.get("preset")
    usage = value.get("usage") or {}
    timings = value.get("timings") or {}
    parts = [f"preset {preset.name}" if preset else "no preset"]
    if usage.get("completion_tokens") is not None:
        parts.append(
            f"{usage.get('prompt_tokens', '?')} prompt + {usage['completion_tokens']} "
            "completion tokens"
        )
    if value.get("finish_reason"):
        parts.append(f"finish {value['finish_reason']}")
    if timings.get("ttft_ms") is not None:
        parts.append(f"first token {timings['ttft_ms']:.0f} ms")
    if timings.get("total_ms") is not None:
        parts.append(f"total {timings['total_ms']:.0f} ms")
    return " · ".join(parts)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    """Rows as aligned columns under their headers (wide CJK characters count twice)."""
    columns = zip(headers, *rows, strict=True)
    widths = [max(_width(cell) for cell in column) for column in columns]
    return "\n".join(
        "  ".join(
            cell + " " * (width - _width(cell)) for cell, width in zip(line, widths, strict=True)
        ).rstrip()
        for line in [headers, *rows]
    )


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "-"


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


@click.command("chat")
@click.option("--model", "model_reference", required=True, help=MODEL_REFERENCE_HELP)
@click.option(
    "--preset",
    "preset_key",
    default=None,
    help=f"A preset key (default: the model's '{DEFAULT_PRESET_KEY}' preset, if any).",
)
@click.option("--system", default=None, help="A system prompt.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Send nothing: print the exact request (URL, masked headers, JSON body, budget).",
)
@click.argument("message")
@with_appcontext
def chat_command(
    model_reference: str, preset_key: str | None, system: str | None, dry_run: bool, message: str
) -> None:
    """Send MESSAGE to a model and print the reply (streamed when the model streams).

    The reply goes to standard output; a line of statistics (preset, tokens, timings) to
    standard error. With --dry-run nothing is sent: the request that would go to the
    provider is printed as JSON — url, headers (every value masked), body (after preset,
    option merge, language policy and capability checks) and budget (estimated, max,
    reserve and limit tokens; max 0 = unlimited window).

    \b
    Example:
      flask chat --model mock "Say hello"
      flask chat --model "OpenRouter/x-ai/grok-4.1-fast" --system "Be brief." "Why SSE?"
      flask chat --model mock --preset default --dry-run "Say hello"
    """
    model = _find_model(model_reference)
    if dry_run:
        _print_request(model, user_text=message, system=system, preset_key=preset_key)
        return
    for event in chat_events(model, user_text=message, system=system, preset_key=preset_key):
        if event.type == "delta":
            click.echo(event.content, nl=False)
        elif event.type == "error":
            click.echo()
            _fail(event.result)
        else:
            click.echo()
            click.echo(f"[{_stats_line(event.result.value)}]", err=True)


def _print_request(model: LLMModel, **arguments: Any) -> None:
    result = preview_request(model, **arguments)
    if not result.success:
        _fail(result)
    value = result.value
    preset = value["preset"]
    _echo_json(
        {
            "url": value["url"],
            "headers": value["headers"],
            "body": value["body"],
            "budget": value["budget"],
            "preset": preset.key or preset.name if preset else None,
            "warnings": value["warnings"],
        }
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
    model = _find_model(reference)
    result = check_model_connection(model)
    if as_json:
        _echo_json(
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
        _fail(result)
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
    model = _find_model(reference)
    stored = model.capabilities
    report = probes.probe_model(model, time_limit=time_limit)
    if as_json:
        _echo_json(report.as_json())
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
        click.echo(_table(["CAPABILITY", "STORED", "OBSERVED", "EVIDENCE"], rows))
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
        _echo_json(
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
        _table(
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
        _echo_json(
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
        _table(
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


@click.group("users")
def users_group() -> None:
    """Manage who can sign in."""


def _errors_text(errors: dict[str, list[str]]) -> str:
    return "; ".join(
        f"{field.replace('_', ' ')} {', '.join(messages)}" for field, messages in errors.items()
    )


def _user(email: str) -> Any:
    user = find_user(email)
    if user is None:
        raise click.ClickException(f"no user has the email {email.strip().lower()}")
    return user


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@with_appcontext
def list_users_command(as_json: bool) -> None:
    """List the users: email, role, created, last sign-in, disabled.

    \b
    Example:
      flask users list --json
    """
    rows = user_service.list_users()
    if as_json:
        _echo_json(
            [
                {
                    "email": row.user.email,
                    "role": row.user.role,
                    "created_at": row.user.created_at.isoformat(),
                    "last_sign_in_at": (
                        row.user.last_sign_in_at.isoformat() if row.user.last_sign_in_at else None
                    ),
                    "disabled": row.user.disabled,
                    "conversations": row.conversation_count,
                }
                for row in rows
            ]
        )
        return
    if not rows:
        click.echo("no users")
        return
    click.echo(
        _table(
            ["EMAIL", "ROLE", "CREATED", "LAST SIGN-IN", "DISABLED"],
            [
                [
                    row.user.email,
                    row.user.role,
                    _when(row.user.created_at),
                    _when(row.user.last_sign_in_at),
                    "yes" if row.user.disabled else "no",
                ]
                for row in rows
            ],
        )
    )


@users_group.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="Make the user an admin (default: member).")
@click.password_option(help="Prompted for when not given.")
@with_appcontext
def create_user_command(email: str, admin: bool, password: str) -> None:
    """Create a user who signs in with EMAIL.

    \b
    Example:
      flask users create --admin you@example.com
    """
    user, errors = create_user(email, password, role="admin" if admin else "member")
    if user is None:
        raise click.ClickException(_errors_text(errors))
    click.echo(f"created {user.role} {user.email}")


@users_group.command("set-password")
@click.argument("email")
@click.password_option(help="Prompted for when not given.")
@with_appcontext
def set_password_command(email: str, password: str) -> None:
    """Give EMAIL a new password; signs that user out everywhere.

    \b
    Example:
      flask users set-password you@example.com
    """
    user = _user(email)
    errors = change_password(user, password)
    if errors:
        raise click.ClickException(_errors_text(errors))
    click.echo(f"new password set for {user.email}; their sessions are ended")


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
        _echo_json([history.as_json(change) for change in changes])
        return
    if not changes:
        click.echo("no changes")
        return
    for change in changes:
        click.echo(
            f"{_when(change.changed_at)}  {change.actor}  {change.action} "
            f"{change.entity_type} {change.entity_label}"
        )
        if change.action == "update":
            for line in history.describe(change.changes):
                click.echo(f"    {line}")


def _guarded(change: Any, email: str) -> Any:
    try:
        return change(_user(email).id)
    except user_service.LastAdminError as error:
        raise click.ClickException(f"{error}; nothing was changed") from error
    except user_service.UserGone as error:
        raise click.ClickException(f"{email} was deleted meanwhile") from error


@users_group.command("set-role")
@click.argument("email")
@click.argument("role", type=click.Choice(["admin", "member"]))
@with_appcontext
def set_role_command(email: str, role: str) -> None:
    """Make EMAIL an admin or a member (the last active admin stays an admin).

    \b
    Example:
      flask users set-role colleague@example.com admin
    """
    user = _guarded(lambda user_id: user_service.set_role(user_id, role), email)
    click.echo(f"{user.email} is now {user.role}")


@users_group.command("disable")
@click.argument("email")
@with_appcontext
def disable_user_command(email: str) -> None:
    """Stop EMAIL signing in; ends all of that user's sessions at once.

    \b
    Example:
      flask users disable leaver@example.com
    """
    user = _guarded(lambda user_id: user_service.set_disabled(user_id, True), email)
    click.echo(f"disabled {user.email}; their sessions are ended")


@users_group.command("enable")
@click.argument("email")
@with_appcontext
def enable_user_command(email: str) -> None:
    """Let a disabled EMAIL sign in again.

    \b
    Example:
      flask users enable returner@example.com
    """
    user = _guarded(lambda user_id: user_service.set_disabled(user_id, False), email)
    click.echo(f"enabled {user.email}")


@users_group.command("reset-password")
@click.argument("email")
@click.option("--generate", is_flag=True, help="Generate a password and print it once (no prompt).")
@with_appcontext
def reset_password_command(email: str, generate: bool) -> None:
    """Give EMAIL a new password (prompted for, or generated); ends that user's sessions.

    \b
    Example:
      flask users reset-password --generate colleague@example.com
    """
    user = _user(email)
    if generate:
        password = user_service.generate_password()
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    errors = change_password(user, password)
    if errors:
        raise click.ClickException(_errors_text(errors))
    if generate:
        click.echo(f"new password for {user.email} (shown once): {password}")
    click.echo(f"their sessions are ended; {user.email} signs in with the new password")


def register(app: Flask) -> None:
    commands = (
        seed_command,
        keys_group,
        up_command,
        chat_command,
        models_group,
        providers_group,
        users_group,
        config_group,
    )
    for command in commands:
        app.cli.add_command(command)
