"""The chat against an upstream that fails, over real HTTP (`live_server` and its mock API).

Every way a provider can fail — refused, silent past the read timeout, 429, 500, a stream cut
mid-way, an in-band error — ends the reply stream with exactly one `end` frame that says what
happened in words, and the transcript keeps what arrived. A provider that hangs holds up nobody
else's pages. A browser that goes away mid-reply is in test_faults_browser.py.
"""

from __future__ import annotations

import html
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from flask import Flask

from tests.support.app import LiveServer
from tests.support.chat_http import (
    PROMPT,
    Frame,
    deltas_text,
    end_html,
    mock_model,
    mock_provider,
    read_frames,
    send,
    stream_outcomes,
    wait_for_status,
)
from tests.support.mock_api import PIECE, WireRecorder
from tests.support.net import closed_port_url
from tests.support.users import ADMIN_EMAIL, signed_in_client
from tests.support.waiting import wait_for
from webapp.services import conversations as chats
from webapp.services.llm_config import init_llm_settings

READ_TIMEOUT = 1.0  # the client's read timeout for the slow-first-byte case


@dataclass(frozen=True)
class Fault:
    header: str | None  # X-Mock-Fault on the provider; None: the provider's port is closed
    status: str  # what the transcript keeps: "error" (nothing arrived) or "incomplete"
    reason: str  # the words that say what happened, in the page and in the row
    mock_outcome: list[str]  # how the mock recorded the stream


FAULTS = {
    "refused": Fault(None, "error", "the connection to the provider failed", []),
    "slow first byte": Fault(
        "delay=20", "error", "the provider did not answer in time (timeout)", []
    ),
    "429": Fault("status=429", "error", "the provider answered HTTP 429", []),
    "500": Fault("status=500", "error", "the provider answered HTTP 500", []),
    "cut mid-way": Fault("cut=3", "incomplete", "the connection to the provider failed", ["cut"]),
    "in-band error": Fault(
        "error=3",
        "incomplete",
        "the provider reported an error: mock fault: in-band error",
        ["error"],
    ),
}


@pytest.fixture
def http(member_http: httpx2.Client) -> httpx2.Client:
    return member_http


def stream_lines(client: httpx2.Client, message_id: int) -> tuple[httpx2.Response, list[str]]:
    """The raw lines of a reply stream, read to the end of the response."""
    with client.stream("GET", f"/messages/{message_id}/stream") as response:
        lines = list(response.iter_lines())
    return response, lines


def single_end_frame(lines: list[str]) -> tuple[list[Frame], str]:
    """The frames, checked: deltas only, then one `end` frame, then nothing at all."""
    frames = list(read_frames(iter(lines)))
    events = [frame.event for frame in frames]
    assert events.count("end") == 1, events
    assert set(events[:-1]) <= {"delta"}, events
    end_at = lines.index("event: end")
    assert all(line.startswith("data: ") for line in lines[end_at + 1 : -1]), lines[end_at:]
    assert lines[-1] == "", lines[end_at:]
    return frames, end_html(frames)


def readable(fragment: str) -> str:
    """The text a reader sees (the fragments put whitespace between their blocks)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", fragment)).split())


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
def test_an_upstream_failure_ends_the_stream_once_with_a_readable_error(
    app: Flask, live_server: LiveServer, http: httpx2.Client, fault: Fault
) -> None:
    live_server.app.config["LLM_REQUEST_TIMEOUT"] = READ_TIMEOUT
    init_llm_settings(live_server.app)
    if fault.header is None:
        provider = mock_provider(live_server, base_url=closed_port_url())
    else:
        provider = mock_provider(live_server, fault.header)
    model = mock_model(provider)
    message_id = send(http, model, PROMPT)

    started = time.monotonic()
    response, lines = stream_lines(http, message_id)
    took = time.monotonic() - started

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    frames, final = single_end_frame(lines)
    # Settled by the fault itself (or the 1 s read timeout), never by waiting out the mock's
    # 20 s: a bound ten times the read timeout, for a loaded machine.
    assert took < 10 * READ_TIMEOUT
    received = deltas_text(frames)
    text = readable(final)
    assert f"The provider request failed: {fault.reason}" in text, text
    assert "Traceback" not in final and "None" not in final and "Exception" not in text
    badge = "Incomplete" if fault.status == "incomplete" else "Error"
    assert badge in text

    message = wait_for_status(message_id, {fault.status})
    assert (message.status, message.error_code) == (fault.status, "LLM_REQUEST_FAILED")
    assert fault.reason in message.error_text
    assert message.content == received
    if fault.status == "incomplete":
        # Some pieces arrived, all of them from the start of the real reply.
        assert 0 < len(received) <= 3 * PIECE
        assert f"Mock response (model=mock): {PROMPT}".startswith(received)
        assert " ".join(received.split()) in text  # shown, above the error
    else:
        assert received == ""
    # A reload shows the very same message.
    assert http.get(f"/messages/{message_id}").text.strip() == final.strip()
    assert stream_outcomes(live_server, count=len(fault.mock_outcome)) == fault.mock_outcome


# --- a provider that hangs ----------------------------------------------------------------

HANG_TIMEOUT = 3.0


@pytest.fixture
def other_clients(live_server: LiveServer, admin: Any, member: Any) -> Any:
    """Another user, the same user in another tab, and nobody signed in (opened up front)."""
    clients = {
        "admin": signed_in_client(live_server, ADMIN_EMAIL),
        "member": signed_in_client(live_server),
        "anonymous": httpx2.Client(base_url=live_server.url, timeout=5),
    }
    yield clients
    for client in clients.values():
        client.close()


def test_a_hanging_provider_holds_up_no_other_page(
    app: Flask,
    live_server: LiveServer,
    http: httpx2.Client,
    admin: Any,
    other_clients: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While one reply waits on a provider that says nothing, every other page answers at
    once. The mock would stay silent for 20 s; a 3 s read timeout ends the wait before the
    test does, so no stream outlives it (and writes into the next test's database)."""
    live_server.app.config["LLM_REQUEST_TIMEOUT"] = HANG_TIMEOUT
    init_llm_settings(live_server.app)
    model = mock_model(mock_provider(live_server, "delay=20"))
    admin_conversation = chats.start_conversation(admin.id).id
    message_id = send(http, model, "Anyone there?")
    pages = [
        ("anonymous", "/healthz"),
        ("admin", "/"),
        ("admin", f"/c/{admin_conversation}"),
        ("admin", "/models/"),
        ("admin", "/providers/"),
        ("member", "/"),
        ("member", f"/messages/{message_id}"),
    ]
    outcome: dict[str, Any] = {}

    def wait_for_the_reply() -> None:
        outcome["lines"] = stream_lines(http, message_id)[1]

    wire = WireRecorder(live_server.app.wsgi_app)
    monkeypatch.setattr(live_server.app, "wsgi_app", wire)
    hanging = threading.Thread(target=wait_for_the_reply, daemon=True)
    hanging.start()
    try:
        assert wait_for_status(message_id, {"streaming"}).status == "streaming"
        # The provider call is made, and is waiting.
        assert wait_for(lambda: any(r.path.endswith("/chat/completions") for r in wire.requests))
        timings = {}
        for who, path in pages:
            started = time.monotonic()
            response = other_clients[who].get(path)
            timings[f"{who} {path}"] = time.monotonic() - started
            assert response.status_code == 200, (who, path, response.status_code)

        assert max(timings.values()) < 1.0, timings
        # All of that happened while the reply was still waiting on the provider.
        assert hanging.is_alive()
        assert wait_for_status(message_id, {"streaming"}, within=0).status == "streaming"
    finally:
        hanging.join(timeout=HANG_TIMEOUT + 5)

    assert not hanging.is_alive()
    _, final = single_end_frame(outcome["lines"])
    assert "The provider request failed: the provider did not answer in time" in readable(final)
    message = wait_for_status(message_id, {"error"})
    assert (message.status, message.error_code) == ("error", "LLM_REQUEST_FAILED")
