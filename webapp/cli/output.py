"""What the commands share: finding a model, failing, and printing tables, times and JSON."""

from __future__ import annotations

import json
import unicodedata
from datetime import datetime
from typing import Any

import click

from webapp.models import LLMModel
from webapp.services import (
    Result,
    llm_models,
)

MODEL_REFERENCE_HELP = (
    "A model: its key, '<provider name>/<model id>', or a model id only one provider has."
)


def find_model(reference: str) -> LLMModel:
    found = llm_models.resolve_model(reference)
    if found.model is not None:
        return found.model
    if found.candidates:
        options = "\n  ".join(found.candidates)
        raise click.ClickException(
            f"no single model matches {reference!r}; did you mean:\n  {options}"
        )
    raise click.ClickException(f"no model matches {reference!r} (see `flask models list`)")


def fail(result: Result) -> None:
    raise click.ClickException(f"{result.code}: {'; '.join(result.errors)}")


def errors_text(errors: dict[str, list[str]]) -> str:
    """A service's field errors as one line: `rpm must be between 1 and …; name can't be blank`."""
    return "; ".join(
        f"{field.replace('_', ' ')} {', '.join(messages)}" for field, messages in errors.items()
    )


def stats_line(value: dict[str, Any]) -> str:
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


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Rows as aligned columns under their headers (wide CJK characters count twice)."""
    columns = zip(headers, *rows, strict=True)
    widths = [max(display_width(cell) for cell in column) for column in columns]
    return "\n".join(
        "  ".join(
            cell + " " * (width - display_width(cell))
            for cell, width in zip(line, widths, strict=True)
        ).rstrip()
        for line in [headers, *rows]
    )


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "-"


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))
