"""The spec's model rules: presence, uniqueness, normalization, reserved keys, ranges."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError

from tests.support.factories import make_model, make_preset, make_provider
from webapp.models import LLMModel, LLMPreset, LLMProvider, ValidationError


def provider_errors(**attributes: Any) -> dict[str, list[str]]:
    values = {"name": "P", "base_url": "https://x.example", "api_prefix": "/v1"}
    return LLMProvider(**{**values, **attributes}).validation_errors()


class TestProvider:
    def test_valid_provider_has_no_errors(self, db: Any) -> None:
        assert provider_errors() == {}

    def test_defaults(self, db: Any) -> None:
        provider = make_provider()
        assert provider.api_format == "openai"
        assert provider.headers == {}
        assert provider.llm_options_defaults == {}
        assert provider.message_overhead_tokens == 0
        assert provider.created_at.tzinfo is not None

    @pytest.mark.parametrize("name", [None, "", "   "])
    def test_name_is_required(self, db: Any, name: str | None) -> None:
        assert provider_errors(name=name)["name"] == ["can't be blank"]

    def test_name_is_unique(self, db: Any) -> None:
        make_provider(name="Same")
        assert provider_errors(name="Same")["name"] == ["has already been taken"]

    def test_only_openai_api_format(self, db: Any) -> None:
        assert "api_format" in provider_errors(api_format="anthropic")

    @pytest.mark.parametrize(
        "url",
        [
            "",
            "ftp://x.example",
            "localhost:8000",
            "http://",
            "http://a b.example",
            "https://x.example/?q=1",
        ],
    )
    def test_base_url_must_be_http_url(self, db: Any, url: str) -> None:
        assert "base_url" in provider_errors(base_url=url)

    def test_api_prefix_may_be_empty_but_not_null(self, db: Any) -> None:
        assert provider_errors(api_prefix="") == {}
        assert (
            "api_prefix" in LLMProvider(name="P", base_url="https://x.example").validation_errors()
        )

    def test_api_prefix_must_be_a_path(self, db: Any) -> None:
        assert "api_prefix" in provider_errors(api_prefix="v1")

    @pytest.mark.parametrize(
        "headers",
        [
            ["X-A"],
            {"X-A": 1},
            {"Bad Name": "v"},
            {"X-A": "v\r\nX-Injected: 1"},
            {"X-A": "v\n"},
            {"": "v"},
        ],
    )
    def test_headers_must_be_valid_http_header_text(self, db: Any, headers: Any) -> None:
        assert "headers" in provider_errors(headers=headers)

    def test_valid_headers_pass(self, db: Any) -> None:
        assert provider_errors(headers={"HTTP-Referer": "https://a.example", "X-Title": "T"}) == {}

    def test_reserved_option_keys_rejected_and_named_sorted(self, db: Any) -> None:
        errors = provider_errors(llm_options_defaults={"stream": True, "model": "x", "top_p": 1})
        assert errors["llm_options_defaults"] == ["contains reserved keys: model, stream"]

    def test_options_must_be_an_object(self, db: Any) -> None:
        assert "llm_options_defaults" in provider_errors(llm_options_defaults=[1, 2])

    @pytest.mark.parametrize("value", [-1, "3", 1.5, None])
    def test_message_overhead_tokens_non_negative_integer(self, db: Any, value: Any) -> None:
        assert "message_overhead_tokens" in provider_errors(message_overhead_tokens=value)

    def test_flush_of_invalid_provider_raises_and_stores_nothing(self, db: Any) -> None:
        db.session.add(LLMProvider(name="", base_url="nope", api_prefix="/v1"))
        with pytest.raises(ValidationError) as raised:
            db.session.commit()
        assert set(raised.value.errors) == {"name", "base_url"}
        db.session.rollback()
        assert db.session.scalar(select(LLMProvider.id)) is None

    def test_enable_all_and_disable_all_toggle_every_model(self, db: Any) -> None:
        provider = make_provider()
        other = make_provider(name="Other")
        for index in range(3):
            make_model(provider, model=f"m{index}", name=f"M{index}")
        untouched = make_model(other, model="o", name="O")
        assert provider.enable_all() == 3
        db.session.commit()
        assert all(m.enabled for m in provider.llm_models)
        provider.disable_all()
        db.session.commit()
        assert not any(m.enabled for m in provider.llm_models)
        db.session.refresh(untouched)
        assert untouched.enabled is False

    def test_delete_cascades_to_models_and_presets(self, db: Any) -> None:
        provider = make_provider()
        make_preset(make_model(provider))
        db.session.delete(provider)
        db.session.commit()
        assert db.session.scalar(select(LLMModel.id)) is None
        assert db.session.scalar(select(LLMPreset.id)) is None

    def test_database_cascades_without_the_orm(self, db: Any) -> None:
        provider = make_provider()
        make_preset(make_model(provider))
        db.session.execute(text("DELETE FROM llm_providers"))
        db.session.commit()
        assert db.session.execute(text("SELECT count(*) FROM llm_presets")).scalar() == 0


class TestModel:
    def test_key_is_stripped_lowercased_and_blank_becomes_null(self, db: Any) -> None:
        provider = make_provider()
        assert make_model(provider, key="  My-Key ").key == "my-key"
        assert make_model(provider, model="m2", key="   ").key is None

    def test_key_is_globally_unique_when_present(self, db: Any) -> None:
        make_model(make_provider(), key="shared")
        other = make_provider(name="Other")
        model = LLMModel(llm_provider_id=other.id, model="x", name="X", key="SHARED")
        assert model.validation_errors()["key"] == ["has already been taken"]

    def test_many_models_without_key(self, db: Any) -> None:
        provider = make_provider()
        make_model(provider, model="a")
        make_model(provider, model="b")
        stored = db.session.scalars(select(LLMModel.key).order_by(LLMModel.model)).all()
        assert stored == [None, None]

    def test_model_is_unique_per_provider_only(self, db: Any) -> None:
        provider = make_provider()
        make_model(provider, model="same")
        clash = LLMModel(llm_provider_id=provider.id, model="same", name="Again")
        assert "model" in clash.validation_errors()
        make_model(make_provider(name="Other"), model="same")
        same = db.session.scalars(select(LLMModel).where(LLMModel.model == "same")).all()
        assert len(same) == 2
        assert len({model.llm_provider_id for model in same}) == 2

    @pytest.mark.parametrize("field", ["model", "name"])
    def test_model_and_name_required(self, db: Any, field: str) -> None:
        model = LLMModel(llm_provider=make_provider(), model="m", name="n")
        setattr(model, field, " ")
        assert model.validation_errors()[field] == ["can't be blank"]

    def test_provider_required(self, db: Any) -> None:
        assert "llm_provider" in LLMModel(model="m", name="n").validation_errors()

    def test_defaults_disabled_no_capabilities_unlimited_window(self, db: Any) -> None:
        model = make_model(make_provider())
        assert model.enabled is False
        assert model.capabilities == dict.fromkeys(model.capabilities, False)
        assert model.context_window_tokens == 0
        assert model.message_overhead_tokens is None
        assert model.connection_tested_at is None

    def test_context_window_must_be_non_negative(self, db: Any) -> None:
        model = LLMModel(
            llm_provider=make_provider(), model="m", name="n", context_window_tokens=-5
        )
        assert "context_window_tokens" in model.validation_errors()

    def test_overhead_inherits_provider_when_null(self, db: Any) -> None:
        model = make_model(make_provider(message_overhead_tokens=4))
        assert model.effective_message_overhead_tokens == 4

    def test_overhead_zero_is_a_real_override(self, db: Any) -> None:
        model = make_model(make_provider(message_overhead_tokens=4), message_overhead_tokens=0)
        assert model.effective_message_overhead_tokens == 0

    def test_capabilities_map_reflects_columns(self, db: Any) -> None:
        model = make_model(make_provider(), supports_streaming=True, supports_tool_calling=True)
        assert model.capabilities["supports_streaming"] is True
        assert model.capabilities["supports_tool_calling"] is True
        assert model.capabilities["supports_parallel_tool_calls"] is False


class TestPreset:
    def test_key_normalized(self, db: Any) -> None:
        preset = make_preset(make_model(make_provider()), key=" DEFAULT ")
        assert preset.key == "default"
        assert preset.is_default

    def test_key_unique_per_model_but_free_across_models(self, db: Any) -> None:
        provider = make_provider()
        first = make_model(provider, model="a")
        make_preset(first, key="fast")
        clash = LLMPreset(llm_model_id=first.id, key="FAST", name="Again")
        assert "key" in clash.validation_errors()
        make_preset(make_model(provider, model="b"), key="fast")
        fast = db.session.scalars(select(LLMPreset).where(LLMPreset.key == "fast")).all()
        assert len(fast) == 2
        assert len({preset.llm_model_id for preset in fast}) == 2

    def test_many_presets_without_key(self, db: Any) -> None:
        model = make_model(make_provider())
        make_preset(model, key=None, name="One")
        make_preset(model, key="", name="Two")
        stored = db.session.execute(select(LLMPreset.name, LLMPreset.key).order_by(LLMPreset.name))
        assert stored.all() == [("One", None), ("Two", None)]

    def test_reserved_override_keys_rejected(self, db: Any) -> None:
        preset = LLMPreset(
            llm_model=make_model(make_provider()),
            name="P",
            llm_options_overrides={"tools": [], "messages": [], "top_k": 3},
        )
        assert preset.validation_errors()["llm_options_overrides"] == [
            "contains reserved keys: messages, tools"
        ]

    def test_name_required(self, db: Any) -> None:
        preset = LLMPreset(llm_model=make_model(make_provider()), name="")
        assert "name" in preset.validation_errors()


class TestDatabaseConstraints:
    """Rules hold even for writes that skip the ORM."""

    def test_negative_overhead_rejected_by_database(self, db: Any) -> None:
        with pytest.raises(IntegrityError):
            db.session.execute(
                insert(LLMProvider.__table__).values(
                    name="raw",
                    base_url="https://x.example",
                    api_prefix="",
                    message_overhead_tokens=-1,
                    created_at=text("CURRENT_TIMESTAMP"),
                    updated_at=text("CURRENT_TIMESTAMP"),
                )
            )
        db.session.rollback()

    def test_null_api_prefix_rejected_by_database(self, db: Any) -> None:
        with pytest.raises(IntegrityError):
            db.session.execute(
                insert(LLMProvider.__table__).values(
                    name="raw",
                    base_url="https://x.example",
                    api_prefix=None,
                    created_at=text("CURRENT_TIMESTAMP"),
                    updated_at=text("CURRENT_TIMESTAMP"),
                )
            )
        db.session.rollback()

    def test_unknown_api_format_rejected_by_database(self, db: Any) -> None:
        with pytest.raises(IntegrityError):
            db.session.execute(
                insert(LLMProvider.__table__).values(
                    name="raw",
                    base_url="https://x.example",
                    api_prefix="",
                    api_format="grpc",
                    created_at=text("CURRENT_TIMESTAMP"),
                    updated_at=text("CURRENT_TIMESTAMP"),
                )
            )
        db.session.rollback()

    def test_duplicate_preset_key_rejected_by_partial_index(self, db: Any) -> None:
        model = make_model(make_provider())
        make_preset(model, key="k")
        with pytest.raises(IntegrityError):
            db.session.execute(
                text(
                    "INSERT INTO llm_presets (llm_model_id, key, name, created_at, updated_at) "
                    "VALUES (:m, 'k', 'dup', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"m": model.id},
            )
        db.session.rollback()

    def test_server_defaults_fill_columns_for_raw_inserts(self, db: Any) -> None:
        db.session.execute(
            text(
                "INSERT INTO llm_providers (name, base_url, api_prefix, created_at, updated_at) "
                "VALUES ('raw', 'https://x.example', '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        db.session.commit()
        provider = db.session.scalars(select(LLMProvider)).one()
        assert (provider.api_format, provider.headers, provider.message_overhead_tokens) == (
            "openai",
            {},
            0,
        )
