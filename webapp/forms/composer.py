"""The chat composer's fields, read into a `Draft` for the conversations service."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webapp.models.validation import MAX_INT
from webapp.services.conversations import Draft

# No row has id 0: a field that is not a usable id becomes a choice of nothing.
_NO_ROW = 0


def read_draft(form: Mapping[str, Any]) -> Draft:
    """The composer's submission: model and preset ids, system prompt, message."""
    system = form.get("system_prompt")
    content = form.get("content")
    return Draft(
        llm_model_id=row_id(form.get("llm_model_id")),
        llm_preset_id=row_id(form.get("llm_preset_id")),
        system_prompt=system if isinstance(system, str) else None,
        content=content if isinstance(content, str) else "",
    )


def row_id(value: object) -> int | None:
    """None for an empty field; the id when it is one; 0 (no row) for anything else."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip()
    if text.isascii() and text.isdigit() and 0 < int(text) <= MAX_INT:
        return int(text)
    return _NO_ROW
