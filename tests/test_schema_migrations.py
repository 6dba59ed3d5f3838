"""Data migrations keep what was there: each one run on rows written at the revision before."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from tests.support.database import postgres_database_beside
from webapp import create_app
from webapp.extensions import db
from webapp.models import LLMProvider


@pytest.fixture
def scratch_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the kind the suite runs on, for migrating step by step."""
    if not database_url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'migrations.sqlite3'}"
        return
    with postgres_database_beside(database_url, f"_migrations_{os.getpid()}") as url:
        yield url


@pytest.fixture
def scratch_app(scratch_database_url: str, tmp_path: Path) -> Iterator[Any]:
    app = create_app(
        {
            "MODELDESK_ENV": "test",
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": scratch_database_url,
            "SECRET_KEY": "test-secret-key",
            "MODELDESK_ENCRYPTION_KEY": "test-encryption-key-0123456789abcdef",
            "INSTANCE_PATH": str(tmp_path / "instance"),
        }
    )
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def insert(table: str, **values: Any) -> int:
    columns = ", ".join(values)
    params = ", ".join(f":{name}" for name in values)
    statement = text(f"INSERT INTO {table} ({columns}) VALUES ({params}) RETURNING id")
    with db.engine.begin() as connection:
        return connection.execute(statement, values).scalar_one()


def test_0003_moves_a_replys_model_and_preset_from_details_to_foreign_keys(
    scratch_app: Any,
) -> None:
    upgrade(revision="0002")
    now = "2026-11-30 12:00:00+00:00"
    stamps = {"created_at": now, "updated_at": now}
    provider = insert(
        "llm_providers",
        name="P",
        api_format="openai",
        base_url="http://127.0.0.1:9",
        api_prefix="/v1",
        headers="{}",
        llm_options_defaults="{}",
        message_overhead_tokens=0,
        **stamps,
    )
    model_columns = {
        "llm_provider_id": provider,
        "name": "M",
        "enabled": True,
        "supports_tool_calling": False,
        "supports_response_format_json_object": False,
        "supports_response_format_json_schema": False,
        "supports_streaming": True,
        "supports_parallel_tool_calls": False,
        "context_window_tokens": 0,
        **stamps,
    }
    kept_model = insert("llm_models", model="kept", **model_columns)
    gone_model = insert("llm_models", model="gone", **model_columns)
    preset = insert(
        "llm_presets",
        llm_model_id=kept_model,
        key="default",
        name="Default",
        llm_options_overrides="{}",
        **stamps,
    )
    user = insert("users", email="a@example.com", password_hash="x", role="admin", **stamps)
    conversation = insert("conversations", user_id=user, title="T", **stamps)

    def message(role: str, details: dict[str, Any]) -> int:
        return insert(
            "chat_messages",
            conversation_id=conversation,
            role=role,
            content="c",
            status="complete",
            details=json.dumps(details),
            model_name="M",
            **stamps,
        )

    asked = message("user", {})
    answered = message(
        "assistant",
        {"llm_model_id": kept_model, "llm_preset_id": preset, "system_prompt": "Be brief."},
    )
    orphaned = message("assistant", {"llm_model_id": gone_model, "llm_preset_id": None})
    with db.engine.begin() as connection:
        connection.execute(text("DELETE FROM llm_models WHERE id = :id"), {"id": gone_model})

    upgrade()

    with db.engine.connect() as connection:
        rows = {
            row.id: row
            for row in connection.execute(
                text("SELECT id, llm_model_id, llm_preset_id, details FROM chat_messages")
            )
        }
    details = {
        id_: row.details if isinstance(row.details, dict) else json.loads(row.details)
        for id_, row in rows.items()
    }
    assert (rows[answered].llm_model_id, rows[answered].llm_preset_id) == (kept_model, preset)
    assert details[answered] == {"system_prompt": "Be brief."}
    assert (rows[orphaned].llm_model_id, rows[orphaned].llm_preset_id) == (None, None)
    assert details[orphaned] == {}
    assert (rows[asked].llm_model_id, details[asked]) == (None, {})


def raw_headers() -> dict[int, dict[str, str]]:
    with db.engine.connect() as connection:
        rows = connection.execute(text("SELECT id, headers FROM llm_providers")).all()
    return {
        row.id: row.headers if isinstance(row.headers, dict) else json.loads(row.headers)
        for row in rows
    }


def test_0004_encrypts_the_header_values_written_at_0003_and_0003_decrypts_them(
    scratch_app: Any,
) -> None:
    upgrade(revision="0003")
    now = "2026-11-30 12:00:00+00:00"
    headers = {
        "api-key": "azure-key-0123456789",
        "Authorization": "Bearer hdr-bearer-token-2718",
        "X-Title": "my-app-title",
    }

    def provider(name: str, values: dict[str, str]) -> int:
        return insert(
            "llm_providers",
            name=name,
            api_format="openai",
            base_url="https://llm.example.com",
            api_prefix="/v1",
            headers=json.dumps(values),
            llm_options_defaults="{}",
            message_overhead_tokens=0,
            created_at=now,
            updated_at=now,
        )

    with_headers, without = provider("With", headers), provider("Without", {})
    assert raw_headers()[with_headers] == headers

    upgrade()

    stored = raw_headers()
    assert sorted(stored[with_headers]) == sorted(headers)
    for name, value in headers.items():
        assert stored[with_headers][name] != value
        assert value not in json.dumps(stored)
    assert stored[without] == {}
    db.session.expire_all()
    assert db.session.get(LLMProvider, with_headers).headers == headers
    assert db.session.get(LLMProvider, without).headers == {}
    db.session.rollback()

    downgrade(revision="0003")

    assert raw_headers() == {with_headers: headers, without: {}}


def test_0005_adds_versions_with_existing_rows_at_version_1(scratch_app: Any) -> None:
    upgrade(revision="0004")
    now = "2026-11-30 12:00:00+00:00"
    stamps = {"created_at": now, "updated_at": now}
    provider = insert(
        "llm_providers",
        name="P",
        api_format="openai",
        base_url="http://127.0.0.1:9",
        api_prefix="/v1",
        headers="{}",
        llm_options_defaults="{}",
        message_overhead_tokens=0,
        **stamps,
    )
    model = insert(
        "llm_models",
        llm_provider_id=provider,
        model="m",
        name="M",
        enabled=True,
        supports_tool_calling=False,
        supports_response_format_json_object=False,
        supports_response_format_json_schema=False,
        supports_streaming=True,
        supports_parallel_tool_calls=False,
        context_window_tokens=0,
        **stamps,
    )
    insert(
        "llm_presets",
        llm_model_id=model,
        key="default",
        name="Default",
        llm_options_overrides="{}",
        **stamps,
    )

    upgrade(revision="0005")

    inspector = inspect(db.engine)
    for table in ("llm_providers", "llm_models", "llm_presets"):
        version = {c["name"]: c for c in inspector.get_columns(table)}["version"]
        assert version["nullable"] is False, table
        assert str(version["default"]).strip("'") == "1", table
        with db.engine.connect() as connection:
            assert connection.execute(text(f"SELECT version FROM {table}")).scalars().all() == [1]


def test_0006_gives_existing_users_session_version_0(scratch_app: Any) -> None:
    upgrade(revision="0005")
    now = "2026-12-01 10:00:00+00:00"
    user = insert(
        "users",
        email="a@example.com",
        password_hash="x",
        role="admin",
        created_at=now,
        updated_at=now,
    )
    upgrade()
    with db.engine.connect() as connection:
        version = connection.execute(
            text("SELECT session_version FROM users WHERE id = :id"), {"id": user}
        ).scalar_one()
    assert version == 0


def test_0009_adds_config_changes_and_downgrades_cleanly(scratch_app: Any) -> None:
    upgrade(revision="0009")
    columns = {c["name"] for c in inspect(db.engine).get_columns("config_changes")}
    assert columns == {
        "id",
        "changed_at",
        "actor",
        "action",
        "entity_type",
        "entity_id",
        "entity_label",
        "changes",
    }
    downgrade(revision="0008")
    assert "config_changes" not in inspect(db.engine).get_table_names()
    upgrade()
    assert "config_changes" in inspect(db.engine).get_table_names()


def test_0014_links_each_reply_to_its_question_and_keeps_the_search(scratch_app: Any) -> None:
    upgrade(revision="0013")
    now = "2026-12-01 16:00:00+00:00"
    stamps = {"created_at": now, "updated_at": now}
    user = insert("users", email="a@example.com", password_hash="x", role="admin", **stamps)
    conversation = insert("conversations", user_id=user, title="Trip", **stamps)

    def message(role: str, content: str) -> int:
        return insert(
            "chat_messages",
            conversation_id=conversation,
            role=role,
            content=content,
            status="complete",
            details="{}",
            **stamps,
        )

    first_question, first_reply = message("user", "Where to?"), message("assistant", "Lisbon.")
    second_question, second_reply = message("user", "When?"), message("assistant", "In May.")

    upgrade(revision="0014")

    with db.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT id, reply_to_id, is_active FROM chat_messages ORDER BY id")
        ).all()
    assert [(row.id, row.reply_to_id, bool(row.is_active)) for row in rows] == [
        (first_question, None, True),
        (first_reply, first_question, True),
        (second_question, None, True),
        (second_reply, second_question, True),
    ]

    def searchable(word: str) -> bool:
        from webapp.services.conversation_search import search

        return [hit.conversation_id for hit in search(user, word)] == [conversation]

    message("assistant", "Or Porto.")  # written after the table was rebuilt (SQLite)
    assert searchable("Lisbon") and searchable("Porto")
    db.session.rollback()

    downgrade(revision="0013")

    columns = {c["name"] for c in inspect(db.engine).get_columns("chat_messages")}
    assert not columns & {"reply_to_id", "is_active"}
    faro = message("assistant", "Or Faro.")
    if db.engine.dialect.name == "sqlite":  # the search triggers are back after the rebuild
        with db.engine.connect() as connection:
            found = connection.execute(
                text("SELECT rowid FROM fts_chat_messages WHERE fts_chat_messages MATCH 'faro'")
            ).scalars()
            assert list(found) == [faro]
