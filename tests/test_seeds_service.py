"""`flask seed`: everything the design lists, create-only, idempotent, race-safe."""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask, url_for
from sqlalchemy import func, select

from seeds import seed_llm
from seeds.llm import OPENROUTER_MODELS, PROVIDERS
from tests.support.app import make_config
from webapp import create_app
from webapp.models import LLMModel, LLMPreset, LLMProvider
from webapp.services.presets import default_preset_of


def counts(db: Any) -> tuple[int, int, int]:
    return tuple(  # type: ignore[return-value]
        db.session.scalar(select(func.count()).select_from(table))
        for table in (LLMProvider, LLMModel, LLMPreset)
    )


def openrouter_model(db: Any, model_id: str) -> LLMModel:
    return db.session.scalars(select(LLMModel).where(LLMModel.model == model_id)).one()


def test_seed_creates_providers_models_presets_and_mock(app: Flask, db: Any) -> None:
    report = seed_llm(db.session, app.config)
    assert counts(db) == (9, 20, 18)
    assert len(report.created) == 47 and report.existing == []
    names = set(db.session.scalars(select(LLMProvider.name)))
    assert names == {name for name, _, _ in PROVIDERS} | {"Mock (Local)"}
    assert all(p.api_format == "openai" for p in db.session.scalars(select(LLMProvider)))


def test_provider_endpoints(app: Flask, db: Any) -> None:
    seed_llm(db.session, app.config)
    rows = {p.name: (p.base_url, p.api_prefix) for p in db.session.scalars(select(LLMProvider))}
    assert rows["OpenRouter"] == ("https://openrouter.ai/api", "/v1")
    assert rows["Volcengine (火山引擎)"] == ("https://ark.cn-beijing.volces.com/api", "/v3")
    assert rows["Ollama (Local)"] == ("http://localhost:11434", "/v1")
    assert rows["Groq"] == ("https://api.groq.com/openai", "/v1")
    assert rows["Mock (Local)"] == (app.config["MOCK_LLM_BASE_URL"], "/mock_llm/v1")


def test_only_local_providers_and_the_mock_take_no_key(app: Flask, db: Any) -> None:
    seed_llm(db.session, app.config)
    keyless = set(
        db.session.scalars(select(LLMProvider.name).where(LLMProvider.requires_api_key.is_(False)))
    )
    assert keyless == {"Mock (Local)", "Ollama (Local)", "Custom"}


def test_openrouter_catalog_is_enabled_with_capability_overrides(app: Flask, db: Any) -> None:
    seed_llm(db.session, app.config)
    for model_id in OPENROUTER_MODELS:
        model = openrouter_model(db, model_id)
        assert model.enabled and model.name == model_id
    assert all(openrouter_model(db, "x-ai/grok-4.1-fast").capabilities.values())
    claude = openrouter_model(db, "anthropic/claude-opus-4.6:nitro").capabilities
    assert claude["supports_response_format_json_schema"] is False
    assert claude["supports_response_format_json_object"] is True
    gpt = openrouter_model(db, "openai/gpt-5.2:nitro").capabilities
    assert not gpt["supports_response_format_json_object"]
    assert not gpt["supports_response_format_json_schema"]
    assert gpt["supports_tool_calling"]
    her = openrouter_model(db, "minimax/minimax-m2-her").capabilities
    assert her == {
        "supports_tool_calling": False,
        "supports_response_format_json_object": False,
        "supports_response_format_json_schema": False,
        "supports_streaming": True,
        "supports_parallel_tool_calls": True,
    }
    assert openrouter_model(db, "minimax/minimax-m2.5:nitro").supports_tool_calling


def test_default_presets_use_recommended_sampling(app: Flask, db: Any) -> None:
    seed_llm(db.session, app.config)

    def preset(model_id: str) -> LLMPreset:
        preset = default_preset_of(openrouter_model(db, model_id).id)
        assert preset is not None and preset.name == "Default"
        return preset

    deepseek = preset("deepseek/deepseek-v3.2:nitro")
    assert deepseek.llm_options_overrides == {"temperature": 1.0, "top_p": 0.95}
    assert deepseek.comment == (
        "Production recommended sampling profile: deepseek_v3_2_local_recommended"
    )
    assert preset("x-ai/grok-4.1-fast").llm_options_overrides == {"temperature": 0.3}
    assert preset("qwen/qwen3-235b-a22b-2507:nitro").llm_options_overrides == {
        "temperature": 0.7,
        "top_p": 0.8,
        "top_k": 20,
        "min_p": 0,
    }
    assert preset("moonshotai/kimi-k2.5:nitro").llm_options_overrides == {
        "temperature": 0.6,
        "top_p": 0.95,
    }
    other = preset("deepseek/deepseek-chat-v3-0324:nitro")
    assert other.llm_options_overrides == {}
    assert other.comment == "Production recommended sampling profile: (none)"


def test_mock_model_and_preset(app: Flask, db: Any) -> None:
    seed_llm(db.session, app.config)
    mock = db.session.scalars(select(LLMModel).where(LLMModel.key == "mock")).one()
    assert (mock.name, mock.model, mock.enabled) == ("Mock", "mock", True)
    assert mock.capabilities == {
        "supports_tool_calling": False,
        "supports_response_format_json_object": False,
        "supports_response_format_json_schema": False,
        "supports_streaming": True,
        "supports_parallel_tool_calls": False,
    }
    preset = default_preset_of(mock.id)
    assert preset is not None and preset.llm_options_overrides == {"temperature": 0.0}


def test_limited_mock_models_are_seeded_with_truthful_flags(app: Flask, db: Any) -> None:
    seed_llm(db.session, app.config)
    rows = db.session.scalars(select(LLMModel).where(LLMModel.model.like("mock-%")))
    capabilities = {row.key: row.capabilities for row in rows}
    assert {key: sorted(k for k, v in caps.items() if v) for key, caps in capabilities.items()} == {
        "mock-basic": ["supports_streaming"],
        "mock-lite": ["supports_response_format_json_object", "supports_tool_calling"],
    }


def test_openrouter_headers_from_environment_and_omitted_when_unset(app: Flask, db: Any) -> None:
    seed_llm(db.session, {**app.config, "OPENROUTER_HTTP_REFERER": "https://me.example"})
    openrouter = db.session.scalars(select(LLMProvider).where(LLMProvider.name == "OpenRouter"))
    assert openrouter.one().headers == {"HTTP-Referer": "https://me.example"}


def test_no_mock_in_production(app: Flask, db: Any) -> None:
    seed_llm(db.session, {**app.config, "MODELDESK_ENV": "production"})
    assert counts(db) == (8, 17, 17)


def test_seed_is_idempotent(app: Flask, db: Any) -> None:
    seed_llm(db.session, app.config)
    report = seed_llm(db.session, app.config)
    assert report.created == []
    assert len(report.existing) == 47
    assert counts(db) == (9, 20, 18)


def test_seed_does_not_overwrite_user_edits(app: Flask, db: Any) -> None:
    seed_llm(db.session, app.config)
    grok = openrouter_model(db, "x-ai/grok-4.1-fast")
    grok.enabled = False
    grok.name = "My Grok"
    default_preset_of(grok.id).llm_options_overrides = {"temperature": 0.9}
    openrouter = grok.llm_provider
    openrouter.base_url = "https://proxy.example/api"
    openrouter.api_key = "sk-user-key"
    db.session.commit()
    seed_llm(db.session, app.config)
    db.session.expire_all()
    grok = openrouter_model(db, "x-ai/grok-4.1-fast")
    assert (grok.enabled, grok.name) == (False, "My Grok")
    assert default_preset_of(grok.id).llm_options_overrides == {"temperature": 0.9}
    assert grok.llm_provider.base_url == "https://proxy.example/api"
    assert grok.llm_provider.api_key == "sk-user-key"


def test_seed_command_reports_created_and_left_alone(app: Flask, runner: Any) -> None:
    first = runner.invoke(args=["seed"])
    assert first.exit_code == 0, first.output
    assert "47 created, 0 left alone" in first.output
    assert "created  provider OpenRouter" in first.output
    second = runner.invoke(args=["seed"])
    assert "0 created, 47 left alone" in second.output


def test_racing_seed_runs_create_everything_once(app: Flask, db: Any, tmp_path: Any) -> None:
    """Two processes' worth of seeding at once: the unique constraints settle it."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)
    # Built here, not in the threads: CPython 3.11.7's ast.parse (werkzeug compiles URL
    # rules with it) is not thread-safe ("AST constructor recursion depth mismatch").
    apps = [
        create_app(make_config(app.config["SQLALCHEMY_DATABASE_URI"], str(tmp_path)))
        for _ in range(2)
    ]
    for other in apps:
        with other.test_request_context():
            url_for("chat.index")  # compile the URL builders now, single-threaded

    def run(other: Flask) -> None:
        try:
            with other.app_context():
                from webapp.extensions import db as other_db

                barrier.wait()
                seed_llm(other_db.session, other.config)
                other_db.session.remove()
                other_db.engine.dispose()
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(other,)) for other in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert counts(db) == (9, 20, 18)
