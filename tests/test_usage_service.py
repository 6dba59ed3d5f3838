"""Usage recording (buffered, written in batches, kept through a database outage) and the
reads behind the Usage page and `flask usage summary`."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.exc import OperationalError

from tests.support.app import make_config
from tests.support.database import DatabaseOutage
from tests.support.factories import make_model, make_provider
from tests.support.usage import on_day, stored_usage, usage_event
from tests.support.users import MEMBER_EMAIL
from tests.support.waiting import wait_for
from webapp import create_app
from webapp.extensions import db as _db
from webapp.llm import results as codes
from webapp.llm.budget import default_estimator
from webapp.models import User
from webapp.services import usage, usage_reports
from webapp.services.usage_reports import UsageFilters


def record_all(*events: usage.UsageEvent) -> None:
    for event in events:
        usage.record(event)


# --- recording -----------------------------------------------------------------------------


def test_record_writes_nothing_until_flushed_then_every_field(app: Flask) -> None:
    event = usage_event(preset_key="fast", error_code=None, estimated=True, stream=False)
    usage.record(event)
    assert stored_usage() == []
    assert usage.pending_count() == 1

    assert usage.flush() == 1

    [row] = stored_usage()
    assert usage.pending_count() == 0
    assert (row.source, row.app_key_id, row.model_key, row.preset_key, row.status) == (
        "gateway",
        1,
        "mock",
        "fast",
        200,
    )
    assert (row.prompt_tokens, row.completion_tokens, row.estimated, row.stream) == (
        10,
        20,
        True,
        False,
    )
    assert (row.ttft_ms, row.total_ms, row.created_at) == (15.0, 120.0, event.created_at)


def test_a_flush_writes_batches_of_the_configured_size(app: Flask) -> None:
    app.extensions["usage"].batch_size = 3
    statements: list[str] = []

    def count_inserts(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO USAGE_RECORDS"):
            statements.append(statement)

    _db.event.listen(_db.engine, "before_cursor_execute", count_inserts)
    try:
        record_all(*(usage_event(app_key_id=n) for n in range(1, 8)))
        assert usage.flush() == 7
    finally:
        _db.event.remove(_db.engine, "before_cursor_execute", count_inserts)
    assert len(statements) == 3  # 3 + 3 + 1 rows, one multi-row INSERT each
    assert [row.app_key_id for row in stored_usage()] == list(range(1, 8))


def test_an_outage_loses_nothing_and_the_rows_appear_when_the_database_answers(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    outage = DatabaseOutage(_db.engine)
    try:
        usage.record(usage_event(app_key_id=1))
        outage.start()
        usage.record(usage_event(app_key_id=2))
        with caplog.at_level(logging.WARNING, logger="webapp.services.usage"):
            assert usage.flush() == 0
            assert usage.flush() == 0
        assert usage.pending_count() == 2
        assert app.extensions["usage"].failing
        # Said once, not at every retry.
        assert len([r for r in caplog.records if "did not answer" in r.message]) == 1
        usage.record(usage_event(app_key_id=3))
        outage.end()
        assert usage.flush() == 3
    finally:
        outage.remove()
    assert [row.app_key_id for row in stored_usage()] == [1, 2, 3]
    assert usage.pending_count() == 0
    assert not app.extensions["usage"].failing


def test_past_the_bound_the_oldest_events_are_dropped_and_counted(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    app.extensions["usage"].max_pending = 3
    record_all(*(usage_event(app_key_id=n) for n in range(1, 6)))
    assert usage.pending_count() == 3
    with caplog.at_level(logging.WARNING, logger="webapp.services.usage"):
        usage.flush()
    assert "dropped the 2 oldest events" in caplog.text
    assert [row.app_key_id for row in stored_usage()] == [3, 4, 5]


def test_an_event_of_a_user_deleted_before_the_write_is_kept_without_the_user(
    app: Flask, member: User
) -> None:
    usage.record(usage_event(source="chat", app_key_id=None, user_id=member.id))
    usage.record(usage_event(app_key_id=9))
    _db.session.delete(member)
    _db.session.commit()
    assert usage.flush() == 2
    assert [(row.user_id, row.app_key_id) for row in stored_usage()] == [(None, None), (None, 9)]


def test_an_outage_while_writing_one_by_one_writes_each_event_once(
    app: Flask, member: User
) -> None:
    inserts: list[str] = []

    def away_at_the_fourth_insert(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # 1: the batch (refused: the user is gone), 2 and 3: the first event alone, then
        # without its user; 4: the second event, as the database goes away.
        if statement.lstrip().upper().startswith("INSERT INTO USAGE_RECORDS"):
            inserts.append(statement)
            if len(inserts) == 4:
                raise OperationalError("(outage)", {}, ConnectionError("went away"))

    record_all(
        usage_event(source="chat", app_key_id=None, user_id=member.id),
        usage_event(app_key_id=2),
        usage_event(app_key_id=3),
    )
    _db.session.delete(member)
    _db.session.commit()
    _db.event.listen(_db.engine, "before_cursor_execute", away_at_the_fourth_insert)
    try:
        assert usage.flush() == 1
    finally:
        _db.event.remove(_db.engine, "before_cursor_execute", away_at_the_fourth_insert)
    assert usage.pending_count() == 2
    assert usage.flush() == 2
    assert [row.app_key_id for row in stored_usage()] == [None, 2, 3]


def test_text_a_caller_chose_is_cut_to_fit_and_made_storable(app: Flask) -> None:
    usage.record(usage_event(model_key="m\x00" + "x" * 400))
    usage.flush()
    [row] = stored_usage()
    assert row.model_key is not None
    assert row.model_key.startswith("m\ufffdx") and len(row.model_key) == 300


def test_the_writer_thread_writes_the_apps_that_ask_for_it_without_a_flush(
    app: Flask, tmp_path: Any
) -> None:
    served = create_app(
        make_config(
            app.config["SQLALCHEMY_DATABASE_URI"],
            str(tmp_path / "writer"),
            USAGE_FLUSH_SECONDS=0.05,
        )
    )
    usage.record(usage_event(app_key_id=1))  # the test app writes only when flushed
    with served.app_context():
        usage.record(usage_event(app_key_id=42))
    try:
        assert wait_for(lambda: [row.app_key_id for row in stored_usage()] == [42])
        assert usage.pending_count() == 1
    finally:
        with served.app_context():
            _db.engine.dispose()


# --- chat replies --------------------------------------------------------------------------


def chat_call(**fields: Any) -> usage.ChatCall:
    values: dict[str, Any] = {
        "user_id": 5,
        "llm_model_id": 7,
        "model_key": "mock",
        "preset_key": "default",
        "model_hint": "mock",
        "prompt": ({"role": "user", "content": "How many tokens is this prompt?"},),
    }
    return usage.ChatCall(**{**values, **fields})


def ended(call: usage.ChatCall, **outcome: Any) -> usage.UsageEvent:
    values: dict[str, Any] = {
        "message_status": "complete",
        "error_code": None,
        "usage": None,
        "reply": "",
        "ttft_ms": 10.0,
        "total_ms": 50.0,
    }
    return call.event(**{**values, **outcome})


def test_a_completed_reply_keeps_the_providers_token_counts() -> None:
    event = ended(chat_call(), usage={"prompt_tokens": 3, "completion_tokens": 4}, reply="Hi")
    assert (event.source, event.status, event.user_id, event.model_key) == (
        "chat",
        200,
        5,
        "mock",
    )
    assert (event.prompt_tokens, event.completion_tokens, event.estimated) == (3, 4, False)


def test_a_stopped_reply_without_usage_is_estimated_with_the_engines_tokenizer() -> None:
    reply = "A partial answer that stopped"
    event = ended(chat_call(), message_status="stopped", reply=reply)
    estimator = default_estimator()
    assert event.status == usage.STOPPED_STATUS
    assert event.estimated is True
    assert event.completion_tokens == estimator.estimate(reply, "mock")
    assert event.prompt_tokens == estimator.estimate("How many tokens is this prompt?", "mock")


@pytest.mark.parametrize(
    ("status", "code", "http_status"),
    [
        ("error", codes.LLM_REQUEST_FAILED, 502),
        ("incomplete", codes.REPLY_LIMIT, 413),
        ("error", codes.MODEL_NOT_FOUND, 404),
        ("error", codes.PROMPT_TOO_LONG, 400),
        ("error", "SOMETHING_NEW", 500),
    ],
)
def test_a_failed_replys_status_comes_from_its_code(
    status: str, code: str, http_status: int
) -> None:
    assert ended(chat_call(), message_status=status, error_code=code).status == http_status


def test_a_reply_refused_before_sending_costs_no_tokens() -> None:
    event = ended(chat_call(), message_status="error", error_code=codes.PROMPT_TOO_LONG)
    assert (event.prompt_tokens, event.completion_tokens, event.estimated) == (0, 0, False)


# --- reading -------------------------------------------------------------------------------


@pytest.fixture
def history(app: Flask, member: User) -> dict[str, Any]:
    """Usage on three days: key 1 and key 2 through the gateway, the member in the chat."""
    model = make_model(make_provider(), key="acme", name="Acme 1")
    chat = {"source": "chat", "app_key_id": None, "user_id": member.id, "model_key": None}
    no_tokens = {"prompt_tokens": None, "completion_tokens": None}
    record_all(
        usage_event(app_key_id=1, created_at=on_day("2026-11-28")),
        usage_event(app_key_id=1, created_at=on_day("2026-11-28", 23), status=502, **no_tokens),
        usage_event(app_key_id=1, created_at=on_day("2026-11-30", 0)),
        usage_event(
            app_key_id=2, model_key="acme", llm_model_id=model.id, created_at=on_day("2026-11-30")
        ),
        usage_event(
            **chat,
            llm_model_id=model.id,
            created_at=on_day("2026-11-30"),
            prompt_tokens=5,
            completion_tokens=6,
        ),
    )
    usage.flush()
    return {"model": model, "member": member}


def test_summary_counts_requests_errors_and_tokens_per_key_and_model(
    history: dict[str, Any],
) -> None:
    rows = [
        (r.key, r.model, r.requests, r.errors, r.prompt_tokens, r.completion_tokens)
        for r in usage_reports.summary()
    ]
    assert rows == [
        ("key #1", "mock", 3, 1, 20, 40),
        ("key #2", "acme", 1, 0, 10, 20),
        (MEMBER_EMAIL, "acme", 1, 0, 5, 6),
    ]


def test_summary_filters_by_key_user_model_and_days(history: dict[str, Any]) -> None:
    model, member = history["model"], history["member"]

    def keys(filters: UsageFilters) -> list[tuple[str, int]]:
        return [(row.key, row.requests) for row in usage_reports.summary(filters)]

    assert keys(UsageFilters(app_key_id=1)) == [("key #1", 3)]
    assert keys(UsageFilters(user_id=member.id)) == [(MEMBER_EMAIL, 1)]
    assert keys(UsageFilters(llm_model_id=model.id)) == [("key #2", 1), (MEMBER_EMAIL, 1)]
    days = UsageFilters.for_days(date(2026, 11, 28), date(2026, 11, 29))
    assert keys(days) == [("key #1", 2)]


def test_daily_series_fills_every_day_of_the_range(history: dict[str, Any]) -> None:
    series = usage_reports.daily_series(
        UsageFilters.for_days(date(2026, 11, 27), date(2026, 12, 1))
    )
    assert [(p.day.isoformat(), p.requests, p.errors) for p in series] == [
        ("2026-11-27", 0, 0),
        ("2026-11-28", 2, 1),  # 12:00 and 23:00 UTC: one day, whatever the server's zone
        ("2026-11-29", 0, 0),
        ("2026-11-30", 3, 0),
        ("2026-12-01", 0, 0),
    ]


def test_daily_series_without_a_range_spans_the_recorded_days(history: dict[str, Any]) -> None:
    series = usage_reports.daily_series()
    assert (series[0].day, series[-1].day, len(series)) == (
        date(2026, 11, 28),
        date(2026, 11, 30),
        3,
    )


def test_nothing_recorded_gives_no_rows_and_no_days(app: Flask) -> None:
    assert usage_reports.summary() == []
    assert usage_reports.daily_series() == []
    since = UsageFilters.last_days(7)
    assert since.since is not None and since.until is None
    assert [p.requests for p in usage_reports.daily_series(since)] == [0] * 8


def test_export_rows_are_the_filtered_records_oldest_first(history: dict[str, Any]) -> None:
    lines = list(usage_reports.csv_lines(usage_reports.export_rows(UsageFilters(app_key_id=1))))
    assert lines[0] == ",".join(usage_reports.EXPORT_HEADERS) + "\r\n"
    assert len(lines) == 4
    assert lines[1].startswith("2026-11-28T12:00:00+00:00,gateway,key #1,mock,,200,,10,20,0,")
    assert ",502,,,,0," in lines[2]  # no tokens reported: blank, not zero


def test_csv_cells_a_spreadsheet_would_run_are_defused(app: Flask) -> None:
    usage.record(usage_event(model_key='=HYPERLINK("http://x")'))
    usage.flush()
    [_, line] = list(usage_reports.csv_lines(usage_reports.export_rows()))
    assert ',"\'=HYPERLINK(""http://x"")",' in line


def test_filter_menus_list_who_and_which_model_has_usage(history: dict[str, Any]) -> None:
    member, model = history["member"], history["model"]
    assert [(c.value, c.label) for c in usage_reports.key_choices()] == [
        ("key:1", "key #1"),
        ("key:2", "key #2"),
        (f"user:{member.id}", MEMBER_EMAIL),
    ]
    assert [(c.value, c.label) for c in usage_reports.model_choices()] == [(str(model.id), "acme")]
