"""The chat over real HTTP against a live server's own mock API: sending, SSE frames, statuses.

For `live_server` tests (streaming, faults, secrets, the browser): the provider points at the
live server itself, so the mock's record is `live_server.app.extensions["mock_llm"]`.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2

from tests.support.app import LiveServer
from tests.support.factories import make_model, make_preset, make_provider
from tests.support.mock_api import FAULT, MOCK_PREFIX
from tests.support.users import csrf_token
from tests.support.waiting import wait_for
from webapp.extensions import db as _db
from webapp.models import ChatMessage, LLMModel, LLMProvider

PROMPT = "Tell me about server-sent events and <b>bold</b> claims & more, at some length please."
LONG_PROMPT = " ".join(["Streaming replies arrive piece by piece over one response."] * 5)


def mock_provider(live_server: LiveServer, fault: str | None = None, **attributes: Any) -> Any:
    """A provider for the live server's own mock API, optionally asking it for a fault."""
    values: dict[str, Any] = {
        "name": "Mock (Local)",
        "base_url": live_server.url,
        "api_prefix": MOCK_PREFIX,
        "headers": {FAULT: fault} if fault else {},
    }
    return make_provider(**{**values, **attributes})


def mock_model(provider: LLMProvider, **attributes: Any) -> LLMModel:
    """The mock model, enabled and streaming, with the seeds' "default" preset."""
    values: dict[str, Any] = {
        "model": "mock",
        "name": "Mock",
        "enabled": True,
        "supports_streaming": True,
    }
    model = make_model(provider, **{**values, **attributes})
    make_preset(model, key="default", name="Default", llm_options_overrides={"temperature": 0})
    return model


def stream_outcomes(live_server: LiveServer, count: int = 1, within: float = 10.0) -> list[str]:
    """How the mock's streams ended, once `count` are recorded (a disconnect shows late)."""
    record = live_server.app.extensions["mock_llm"]
    wait_for(lambda: len(record.outcomes()) >= count, timeout=within)
    return [outcome.outcome for outcome in record.outcomes()]


def wait_for_status(message_id: int, statuses: set[str], within: float = 10.0) -> ChatMessage:
    """The message, re-read until its status is one of `statuses` (the server saves late)."""

    def read() -> ChatMessage:
        _db.session.expire_all()
        message = _db.session.get(ChatMessage, message_id)
        assert message is not None
        return message

    wait_for(lambda: read().status in statuses, timeout=within)
    return read()


def send(client: httpx2.Client, model: LLMModel | int, content: str = PROMPT, **fields: Any) -> int:
    """Send a first message from the empty page with a model (or its id, for an app in another
    process); returns the pending reply's id."""
    model_id = model if isinstance(model, int) else model.id
    data = {
        "csrf_token": csrf_token(client),
        "llm_model_id": str(model_id),
        "llm_preset_id": "",
        "system_prompt": "",
        "content": content,
        **fields,
    }
    response = client.post("/c/new", data=data)
    assert response.status_code == 303, response.text
    page = client.get(response.headers["Location"]).text
    ids = re.findall(r'sse-connect="/messages/(\d+)/stream"', page)
    assert ids, page
    return int(ids[-1])


@dataclass(frozen=True)
class Frame:
    event: str
    data: str
    at: float


def read_frames(lines: Iterator[str]) -> Iterator[Frame]:
    """Parse SSE from a line iterator: data lines joined with newlines, comments skipped.
    Every reply stream opens with an empty `reset` frame (the text follows from its first
    character); it is checked here and left out."""
    event, data = "message", []
    first = True
    for line in lines:
        if line == "":
            if data and first:
                assert (event, data) == ("reset", [""]), f"a stream opened with {event}"
                first = False
            elif data:
                yield Frame(event, "\n".join(data), time.monotonic())
            event, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: "):
            data.append(line[len("data: ") :])
        elif line == "data:":
            data.append("")


def stream(client: httpx2.Client, message_id: int) -> tuple[httpx2.Response, list[Frame]]:
    with client.stream("GET", f"/messages/{message_id}/stream") as response:
        frames = list(read_frames(response.iter_lines()))
    return response, frames


def deltas_text(frames: list[Frame]) -> str:
    return "".join(html.unescape(frame.data) for frame in frames if frame.event == "delta")


def end_html(frames: list[Frame]) -> str:
    assert [frame.event for frame in frames].count("end") == 1
    assert frames[-1].event == "end"
    return frames[-1].data
