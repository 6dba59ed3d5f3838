"""`flask usage summary`: per key and model, as a table or JSON, pending events included."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from flask.testing import FlaskCliRunner

from tests.support.usage import usage_event
from tests.support.users import MEMBER_EMAIL
from webapp.models import User
from webapp.services import app_keys, usage


def days_ago(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def record_history(member: User) -> None:
    for event in (
        usage_event(app_key_id=1, created_at=days_ago(1)),
        usage_event(app_key_id=1, created_at=days_ago(2), status=502, completion_tokens=None),
        usage_event(app_key_id=1, created_at=days_ago(20)),
        usage_event(
            source="chat",
            app_key_id=None,
            user_id=member.id,
            model_key="acme",
            created_at=days_ago(3),
            prompt_tokens=7,
            completion_tokens=8,
        ),
    ):
        usage.record(event)


def test_summary_json_writes_pending_events_first(runner: FlaskCliRunner, member: User) -> None:
    record_history(member)
    result = runner.invoke(args=["usage", "summary", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [
        {
            "key": "key #1",
            "model": "mock",
            "requests": 3,
            "errors": 1,
            "prompt_tokens": 30,
            "completion_tokens": 40,
        },
        {
            "key": MEMBER_EMAIL,
            "model": "acme",
            "requests": 1,
            "errors": 0,
            "prompt_tokens": 7,
            "completion_tokens": 8,
        },
    ]
    assert usage.pending_count() == 0


def test_summary_since_days_leaves_older_requests_out(runner: FlaskCliRunner, member: User) -> None:
    record_history(member)
    result = runner.invoke(args=["usage", "summary", "--since", "7", "--json"])
    assert [(row["key"], row["requests"]) for row in json.loads(result.output)] == [
        ("key #1", 2),
        (MEMBER_EMAIL, 1),
    ]


def test_summary_table_lines_up_under_its_headers(runner: FlaskCliRunner, member: User) -> None:
    record_history(member)
    result = runner.invoke(args=["usage", "summary"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == [
        "KEY", "MODEL", "REQUESTS", "ERRORS", "PROMPT_TOKENS", "COMPLETION_TOKENS"
    ]  # fmt: skip
    assert lines[1].split() == ["key", "#1", "mock", "3", "1", "30", "40"]
    assert lines[2].split() == [MEMBER_EMAIL, "acme", "1", "0", "7", "8"]
    assert lines[0].index("MODEL") == lines[1].index("mock") == lines[2].index("acme")


def test_summary_says_when_nothing_was_recorded(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["usage", "summary"])
    assert (result.exit_code, result.output) == (0, "no usage recorded\n")
    assert json.loads(runner.invoke(args=["usage", "summary", "--json"]).output) == []


def test_a_negative_since_is_refused(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["usage", "summary", "--since", "-1"])
    assert result.exit_code == 2
    assert "--since" in result.output


def test_a_gateway_call_is_summed_under_its_app_key_s_name(runner: FlaskCliRunner) -> None:
    created = app_keys.create_key("billing-bot")
    assert created.key is not None
    usage.record(usage_event(app_key_id=created.key.id))

    result = runner.invoke(args=["usage", "summary", "--json"])

    assert result.exit_code == 0, result.output
    assert [row["key"] for row in json.loads(result.output)] == ["billing-bot"]
