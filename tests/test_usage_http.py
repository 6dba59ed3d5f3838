"""Chat replies over a real HTTP server are recorded as usage: one row per reply, with the
provider's token counts, or estimated ones when it reported none."""

from __future__ import annotations

import httpx2

from tests.support.app import LiveServer
from tests.support.chat_http import mock_model, mock_provider, send, stream, wait_for_status
from tests.support.usage import stored_usage
from webapp.llm import results as codes
from webapp.models import ChatMessage, User
from webapp.services import usage, usage_reports


def flush_server(live_server: LiveServer) -> None:
    """Write what the server recorded (its requests' events wait in its own buffer)."""
    with live_server.app.app_context():
        usage.flush()


def test_a_streamed_reply_is_one_usage_row_with_the_providers_tokens(
    live_server: LiveServer, member_http: httpx2.Client, member: User
) -> None:
    model = mock_model(mock_provider(live_server), key="mock")
    reply_id = send(member_http, model)
    response, _frames = stream(member_http, reply_id)
    assert response.status_code == 200
    message: ChatMessage = wait_for_status(reply_id, {"complete"})
    assert message.usage and message.usage["completion_tokens"] > 0

    flush_server(live_server)

    [row] = stored_usage()
    assert (row.source, row.user_id, row.app_key_id) == ("chat", member.id, None)
    assert (row.llm_model_id, row.model_key, row.preset_key) == (model.id, "mock", "default")
    assert (row.status, row.error_code, row.stream) == (200, None, True)
    assert (row.prompt_tokens, row.completion_tokens, row.estimated) == (
        message.usage["prompt_tokens"],
        message.usage["completion_tokens"],
        False,
    )
    assert (row.ttft_ms, row.total_ms) == (message.ttft_ms, message.total_ms)
    [summary] = usage_reports.summary()
    assert (summary.key, summary.model, summary.requests, summary.errors) == (
        member.email,
        "mock",
        1,
        0,
    )


def test_a_failed_upstream_is_recorded_as_a_502_with_estimated_tokens(
    live_server: LiveServer, member_http: httpx2.Client, member: User
) -> None:
    model = mock_model(mock_provider(live_server, fault="status=500"), key="mock")
    reply_id = send(member_http, model)
    stream(member_http, reply_id)
    message = wait_for_status(reply_id, {"error"})
    assert message.error_code == codes.LLM_REQUEST_FAILED

    flush_server(live_server)

    [row] = stored_usage()
    assert (row.status, row.error_code, row.user_id) == (502, codes.LLM_REQUEST_FAILED, member.id)
    assert row.estimated is True
    assert row.prompt_tokens is not None and row.prompt_tokens > 0
    assert row.completion_tokens == 0
