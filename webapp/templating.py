"""Jinja filters and globals: how values are shown (counts, JSON, masks, hints, Markdown)."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, current_app

from webapp.models import RESERVED_OPTION_KEYS
from webapp.models.llm import DEFAULT_PRESET_KEY
from webapp.models.validation import base_url_without_prefix
from webapp.services.markdown import render_markdown
from webapp.services.providers import masked_headers

RESERVED_KEYS_HINT = ", ".join(sorted(RESERVED_OPTION_KEYS))


def render_fragment(name: str, **context: Any) -> str:
    """A template rendered with only the context given, without the context processors: for
    a fragment that needs nothing else — a reply stream's end frame, where Flask-Login's
    processor would load the signed-in user, one query, for nothing."""
    return current_app.jinja_env.get_template(name).render(**context)


def plural(count: int, noun: str) -> str:
    """ "1 model", "3 models"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def compact_json(value: Any) -> str:
    """One-line JSON for lists (escaped by the template like any other text)."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def pretty_json(value: Any) -> str:
    """Indented JSON for editing; nothing at all is shown as {}."""
    if not value:
        return "{}"
    return json.dumps(value, indent=2, ensure_ascii=False)


def sentence(message: str) -> str:
    """A message with its first letter capitalized ("can't be blank" → "Can't be blank")."""
    return message[:1].upper() + message[1:]


def register_template_filters(app: Flask) -> None:
    app.add_template_filter(plural)
    app.add_template_filter(compact_json)
    app.add_template_filter(pretty_json)
    app.add_template_filter(sentence)
    # Secret header values (API keys, tokens) shown as a mask; the API key's own mask is
    # `LLMProvider.api_key_hint`.
    app.add_template_filter(masked_headers)
    app.add_template_filter(render_markdown, "markdown")
    app.add_template_global(RESERVED_KEYS_HINT, "reserved_keys_hint")
    app.add_template_global(base_url_without_prefix)
    app.add_template_global(DEFAULT_PRESET_KEY, "default_preset_key")
