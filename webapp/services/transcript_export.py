"""A conversation to take away: as Markdown to read, as JSON to process.

Both are built from the stored transcript, so they say what the page says: who wrote each
message, which model and preset answered, and (JSON) the status, usage and timings.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from webapp.models import ChatMessage, Conversation

FILENAME_CHARS = 60
ROLE_HEADINGS = {"user": "You", "assistant": "Assistant"}


def export_filename(conversation: Conversation, extension: str) -> str:
    """`<slug of the title>.<extension>`, ASCII only so every browser keeps it as is."""
    ascii_title = (
        unicodedata.normalize("NFKD", conversation.title).encode("ascii", "ignore").decode()
    )
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")[:FILENAME_CHARS]
    return f"{slug.strip('-') or 'conversation'}.{extension}"


def as_markdown(conversation: Conversation, messages: list[ChatMessage]) -> str:
    """The title, the system prompt when there is one, then each message under a heading
    naming its author (and, for a reply, the model and preset); the texts as written."""
    parts = [f"# {_one_line(conversation.title)}"]
    if conversation.system_prompt:
        parts.append(f"**System prompt:**\n\n{_quoted(conversation.system_prompt)}")
    for message in messages:
        parts.append(_markdown_heading(message))
        if message.content:
            parts.append(message.content.strip("\n"))
        if message.error_code:
            parts.append(f"*{message.error_code}: {_one_line(message.error_text or '')}*")
    return "\n\n".join(parts) + "\n"


def _markdown_heading(message: ChatMessage) -> str:
    heading = f"## {ROLE_HEADINGS.get(message.role, message.role)}"
    names = [name for name in (message.model_name, message.preset_name) if name]
    if names:
        heading += f" · {' · '.join(_one_line(name) for name in names)}"
    if message.role == "assistant" and message.status != "complete":
        heading += f" ({message.status})"
    return heading


def _one_line(text: str) -> str:
    # A heading ends at its line: a title or name with a line break must not end it early.
    return " ".join(text.split())


def _quoted(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def as_json(conversation: Conversation, messages: list[ChatMessage]) -> dict[str, Any]:
    """The conversation as a JSON-ready dict: title, creation time, system prompt, and each
    message with its model, preset, status, usage and timings."""
    return {
        "title": conversation.title,
        "created_at": conversation.created_at.isoformat(),
        "system_prompt": conversation.system_prompt,
        "messages": [_message_json(message) for message in messages],
    }


def _message_json(message: ChatMessage) -> dict[str, Any]:
    return {
        "role": message.role,
        "content": message.content,
        "model": message.model_name,
        "preset": message.preset_name,
        "status": message.status,
        "error": (
            {"code": message.error_code, "text": message.error_text} if message.error_code else None
        ),
        "usage": message.usage,
        "timings": {
            "ttft_ms": message.ttft_ms,
            "total_ms": message.total_ms,
            "tokens_per_second": message.tokens_per_second,
        },
        "created_at": message.created_at.isoformat(),
    }
