"""The migrations build exactly the schema the models describe, on every database."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from webapp.extensions import db as _db
from webapp.models.chat import described_by_models


def test_models_and_migrated_schema_agree(db: Any) -> None:
    with db.engine.connect() as connection:
        opts = {"compare_type": True, "include_name": described_by_models}
        context = MigrationContext.configure(connection, opts=opts)
        diff = compare_metadata(context, _db.metadata)
    assert diff == []


def test_tables_and_columns_are_the_contract(db: Any) -> None:
    inspector = inspect(db.engine)
    columns = {
        t: {c["name"] for c in inspector.get_columns(t)}
        for t in ("llm_providers", "llm_models", "llm_presets")
    }
    assert columns["llm_providers"] == {
        "id",
        "name",
        "api_format",
        "base_url",
        "api_prefix",
        "api_key",
        "requires_api_key",
        "headers",
        "llm_options_defaults",
        "message_overhead_tokens",
        "created_at",
        "updated_at",
        "version",
    }
    assert columns["llm_models"] == {
        "id",
        "llm_provider_id",
        "model",
        "name",
        "key",
        "enabled",
        "comment",
        "supports_tool_calling",
        "supports_response_format_json_object",
        "supports_response_format_json_schema",
        "supports_streaming",
        "supports_parallel_tool_calls",
        "context_window_tokens",
        "message_overhead_tokens",
        "connection_tested_at",
        "connection_failed_at",
        "connection_error",
        "capabilities_probed_at",
        "created_at",
        "updated_at",
        "version",
    }
    assert columns["llm_presets"] == {
        "id",
        "llm_model_id",
        "key",
        "name",
        "comment",
        "llm_options_overrides",
        "created_at",
        "updated_at",
        "version",
    }


def test_json_columns_are_jsonb_on_postgresql(db: Any) -> None:
    inspector = inspect(db.engine)
    types = {c["name"]: type(c["type"]).__name__ for c in inspector.get_columns("llm_providers")}
    expected = "JSONB" if db.engine.dialect.name == "postgresql" else "JSON"
    assert types["headers"] == expected
    assert types["llm_options_defaults"] == expected
