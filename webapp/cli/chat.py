"""`flask chat`: one message to a model, from the terminal."""

from __future__ import annotations

from typing import Any

import click
from flask.cli import with_appcontext

from webapp.cli.output import (
    MODEL_REFERENCE_HELP,
    echo_json,
    fail,
    find_model,
    stats_line,
)
from webapp.models import LLMModel
from webapp.models.llm import DEFAULT_PRESET_KEY
from webapp.services.chat import chat_events, preview_request


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
    model = find_model(model_reference)
    if dry_run:
        _print_request(model, user_text=message, system=system, preset_key=preset_key)
        return
    for event in chat_events(model, user_text=message, system=system, preset_key=preset_key):
        if event.type == "delta":
            click.echo(event.content, nl=False)
        elif event.type == "error":
            click.echo()
            fail(event.result)
        else:
            click.echo()
            click.echo(f"[{stats_line(event.result.value)}]", err=True)


def _print_request(model: LLMModel, **arguments: Any) -> None:
    result = preview_request(model, **arguments)
    if not result.success:
        fail(result)
    value = result.value
    preset = value["preset"]
    echo_json(
        {
            "url": value["url"],
            "headers": value["headers"],
            "body": value["body"],
            "budget": value["budget"],
            "preset": preset.key or preset.name if preset else None,
            "warnings": value["warnings"],
        }
    )
